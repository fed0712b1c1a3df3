"""The conformance kit: drive a tracker plugin through the lifecycles the hook contract promises, without
Ray, and check that it neither fails nor loses anything.

    from trackbridge.testing.conformance import StoredRuns, check_plugin

    def read_back(directory) -> StoredRuns:          # what YOUR tracker stored, read with its own API
        ...

    def test_my_plugin_conforms(tmp_path):
        report = check_plugin(lambda d: MyPlugin(root=str(d)), read_back, tmp_path)
        assert report.ok, report.summary()

Each scenario gets a fresh directory and a fresh plugin from your factory. The kit checks, per scenario,
that no hook raised (the delivery counts) and, when ``read_back`` is given, that each trial is one run holding
metric ``loss`` at exactly the steps sent, ending with the status sent (if your reader reports statuses), and
(if your reader fills ``logged_steps``) the values logged inside the trial at exactly their own steps.
"""

from __future__ import annotations

import functools
import math
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trackbridge.events import ExperimentInfo, LoggedFile, TrialInfo, TrialStatus
from trackbridge.ledger import PluginStats
from trackbridge.testing.script import LifecycleScript, make_trial

PluginFactory = Callable[[Path], Any]
Reader = Callable[[Path], "StoredRuns"]


@dataclass
class StoredRuns:
    """What a tracker holds, as ``read_back`` reports it."""

    #: trial id -> steps at which metric ``loss`` was stored, in storage order (duplicates included).
    steps: dict[str, list[int]] = field(default_factory=dict)
    #: trial id -> "completed" / "failed" / "unfinished" (leave a trial out if the tracker has no status).
    statuses: dict[str, str] = field(default_factory=dict)
    #: trial id -> how many runs the tracker holds for it (default: 1 per trial in ``steps``).
    runs_per_trial: dict[str, int] = field(default_factory=dict)
    #: trial id -> steps at which the in-trial value ``batch_loss`` was stored (``trackbridge_trial_log``'s
    #: own step, not ``training_iteration``), in storage order. Leave it empty to skip that check.
    logged_steps: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class ScenarioResult:
    name: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ConformanceReport:
    results: list[ScenarioResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def summary(self) -> str:
        lines = []
        for r in self.results:
            lines.append(f"{'ok  ' if r.ok else 'FAIL'} {r.name}")
            lines += [f"       {p}" for p in r.problems]
        return "\n".join(lines)


class _Scenario:
    """One scenario's lifecycle script, with trials that live in the scenario's directory."""

    def __init__(self, experiment: str, directory: Path, resumed: bool = False) -> None:
        info = ExperimentInfo(name=experiment, path=str(directory), local_path=str(directory), resumed=resumed)
        self.script = LifecycleScript(info)
        self.directory = directory

    def trial(self, trial_id: str, config: Mapping[str, Any] | None = None) -> TrialInfo:
        trial_dir = self.directory / "tune" / f"trial_{trial_id}"
        trial_dir.mkdir(parents=True, exist_ok=True)
        return make_trial(
            trial_id,
            config=config or {"lr": 0.01, "model": {"depth": 3}},
            experiment_name=self.script.experiment.name,
            trial_name=f"conformance_{trial_id}",
            directory=str(trial_dir),
        )

    def results(self, trial: TrialInfo, steps: Iterable[int], extra: Mapping[str, Any] | None = None) -> None:
        for step in steps:
            self.script.result(trial, step, {"loss": 1.0 / step, **dict(extra or {})})

    def run(self, plugin: Any) -> PluginStats:
        return self.script.play(plugin)


ODD_VALUES: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "none": None,
    "text": "hello",
    "flag": True,
    "big_text": "x" * 10_000,
    "list": [1.0, 2.0, 3.0],
    "mixed": [1, "a"],
    "nested": {"a": {"b": 1.5}},
    "key with spaces": 1.0,
    "dots.in.key": 2.0,
    "odd:chars@!": 3.0,
    "ünïcode": 4.0,
    "empty": {},
    "object": object(),
}


def _check_stats(stats: PluginStats, problems: list[str]) -> None:
    if stats.failed or stats.dropped:
        problems.append(f"hooks failed: {stats.failed}, dropped: {stats.dropped}, by hook: {stats.errors_by_hook}")


def _check_stored(stored: StoredRuns, expected: Mapping[str, tuple[list[int], str]], problems: list[str]) -> None:
    for tid, (steps, status) in expected.items():
        got = stored.steps.get(tid)
        if got != steps:
            problems.append(f"trial {tid}: loss stored at steps {got}, expected {steps}")
        runs = stored.runs_per_trial.get(tid, 1 if got is not None else 0)
        if runs != 1:
            problems.append(f"trial {tid}: {runs} runs in the tracker, expected 1")
        if tid in stored.statuses and stored.statuses[tid] != status:
            problems.append(f"trial {tid}: status {stored.statuses[tid]!r}, expected {status!r}")


def _check_logged(stored: StoredRuns, expected: Mapping[str, list[int]], problems: list[str]) -> None:
    if not stored.logged_steps:  # the reader does not report in-trial values
        return
    for tid, steps in expected.items():
        got = stored.logged_steps.get(tid)
        if got != steps:
            problems.append(f"trial {tid}: batch_loss stored at steps {got}, expected {steps}")


def _scenario(name: str, directory: Path, body: Callable[[Path, list[str]], None]) -> ScenarioResult:
    directory.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    try:
        body(directory, problems)
    except Exception as exc:  # the kit reports, it does not crash the author's test run half-way
        problems.append(f"raised {type(exc).__name__}: {exc}")
    return ScenarioResult(name, problems)


def check_plugin(
    make_plugin: PluginFactory,
    read_back: Reader | None,
    workdir: Path | str,
    *,
    scenarios: Iterable[str] | None = None,
) -> ConformanceReport:
    """Run the conformance scenarios; ``make_plugin(directory)`` builds a fresh plugin writing under it."""
    root = Path(workdir)
    chosen = set(scenarios or SCENARIOS)
    results = []
    for name, scenario in SCENARIOS.items():
        if name in chosen:
            results.append(_scenario(name, root / name, functools.partial(scenario, make_plugin, read_back)))
    return ConformanceReport(results)


# ------------------------------------------------------------------------------------------- scenarios
def _lifecycle(make_plugin: PluginFactory, read_back: Reader | None, d: Path, problems: list[str]) -> None:
    """Two trials interleaved: results, a checkpoint, one completes, one fails."""
    s = _Scenario("conformance_lifecycle", d)
    a, b = s.trial("a"), s.trial("b", {"lr": 0.1})
    s.script.start(a)
    s.script.start(b)
    for step in range(1, 6):
        s.results(a, [step])
        s.results(b, [step])
        if step == 3:
            s.script.write_checkpoint(a, step, d)
    s.script.complete(a, TrialStatus.COMPLETED)
    s.script.complete(b, TrialStatus.FAILED, "Traceback ...\nValueError: diverged")
    _check_stats(s.run(make_plugin(d)), problems)
    if read_back:
        _check_stored(read_back(d), {"a": ([1, 2, 3, 4, 5], "completed"), "b": ([1, 2, 3, 4, 5], "failed")}, problems)


def _one_trial(name: str, status: TrialStatus, extra: Mapping[str, Any] | None = None, config: Any = None) -> Any:
    """A scenario of one trial with three results that ends with ``status``."""

    def scenario(make_plugin: PluginFactory, read_back: Reader | None, d: Path, problems: list[str]) -> None:
        s = _Scenario(f"conformance_{name}", d)
        trial = s.trial(name[0], config)
        s.script.start(trial)
        s.results(trial, range(1, 4), extra)
        s.script.complete(trial, status)
        _check_stats(s.run(make_plugin(d)), problems)
        if read_back:
            _check_stored(read_back(d), {name[0]: ([1, 2, 3], status.value)}, problems)

    return scenario


def _paused_and_resumed(make_plugin: PluginFactory, read_back: Reader | None, d: Path, problems: list[str]) -> None:
    """A scheduler pauses the trial and resumes it: the second start continues the same run."""
    s = _Scenario("conformance_pause", d)
    trial = s.trial("p")
    s.script.start(trial)
    s.results(trial, range(1, 4))
    s.script.start(trial, resumed=True, last_step=3)
    s.results(trial, range(4, 7))
    s.script.complete(trial, TrialStatus.COMPLETED)
    _check_stats(s.run(make_plugin(d)), problems)
    if read_back:
        _check_stored(read_back(d), {"p": ([1, 2, 3, 4, 5, 6], "completed")}, problems)


def _restored_in_a_new_process(
    make_plugin: PluginFactory, read_back: Reader | None, d: Path, problems: list[str]
) -> None:
    """Tuner.restore: a plugin unpickled from before the run continues the trial's existing run."""
    plugin = make_plugin(d)
    before_run = pickle.dumps(plugin)  # what Tune writes into tuner.pkl
    first = _Scenario("conformance_restore", d)
    trial = first.trial("r")
    first.script.start(trial)
    first.results(trial, range(1, 4))
    first.script.complete(trial, TrialStatus.UNFINISHED)  # Ctrl+C
    _check_stats(first.run(plugin), problems)
    second = _Scenario("conformance_restore", d, resumed=True)
    trial = second.trial("r")
    second.script.start(trial, resumed=True, last_step=3)
    second.results(trial, range(4, 7))
    second.script.complete(trial, TrialStatus.COMPLETED)
    _check_stats(second.run(pickle.loads(before_run)), problems)
    if read_back:
        _check_stored(read_back(d), {"r": ([1, 2, 3, 4, 5, 6], "completed")}, problems)


def _in_trial_log(make_plugin: PluginFactory, read_back: Reader | None, d: Path, problems: list[str]) -> None:
    """Values logged inside the trial between its results, at steps of their own (1..6, while the results
    are at 1..3), one small file, and the odd values once: none of it may fail or disturb the results."""
    s = _Scenario("conformance_in_trial_log", d)
    trial = s.trial("l")
    upload = d / "driver_copies" / "notes-0001.txt"  # the driver's copy; stored under the name "notes.txt"
    upload.parent.mkdir(parents=True, exist_ok=True)
    upload.write_text("logged inside the trial\n")
    s.script.start(trial)
    for result_step in range(1, 4):
        for step in (2 * result_step - 1, 2 * result_step):
            s.script.log(trial, step, {"batch_loss": 1.0 / step})
        if result_step == 2:
            s.script.log(trial, 4, {}, [LoggedFile(path=str(upload), name="notes.txt")])
            s.script.log(trial, 4, ODD_VALUES)
        s.results(trial, [result_step])
    s.script.complete(trial, TrialStatus.COMPLETED)
    _check_stats(s.run(make_plugin(d)), problems)
    if read_back:
        stored = read_back(d)
        _check_stored(stored, {"l": ([1, 2, 3], "completed")}, problems)
        _check_logged(stored, {"l": [1, 2, 3, 4, 5, 6]}, problems)


#: NaN, infinities, None, strings, lists, nested dicts, odd keys, objects: never a failed hook.
_ODD_CONFIG = {"fn": repr(len), "huge": {f"k{i}": i for i in range(500)}, "long": "v" * 10_000}

SCENARIOS: dict[str, Callable[..., None]] = {
    "lifecycle": _lifecycle,
    "unfinished": _one_trial("unfinished", TrialStatus.UNFINISHED),
    "paused_and_resumed": _paused_and_resumed,
    "restored_in_a_new_process": _restored_in_a_new_process,
    "odd_values": _one_trial("odd_values", TrialStatus.COMPLETED, ODD_VALUES, _ODD_CONFIG),
    "in_trial_log": _in_trial_log,
}
