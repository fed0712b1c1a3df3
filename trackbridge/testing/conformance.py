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
metric ``loss`` at exactly the steps sent, ending with the status sent (if your reader reports statuses).
"""

from __future__ import annotations

import math
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from trackbridge.dispatch import Dispatcher, PluginStats
from trackbridge.events import CheckpointInfo, ExperimentInfo, TrialInfo, TrialStatus
from trackbridge.loading import resolve
from trackbridge.values import flatten

PluginFactory = Callable[[Path], Any]


@dataclass
class StoredRuns:
    """What a tracker holds, as ``read_back`` reports it."""

    #: trial id -> steps at which metric ``loss`` was stored, in storage order (duplicates included).
    steps: dict[str, list[int]] = field(default_factory=dict)
    #: trial id -> "completed" / "failed" / "unfinished" (leave a trial out if the tracker has no status).
    statuses: dict[str, str] = field(default_factory=dict)
    #: trial id -> how many runs the tracker holds for it (default: 1 per trial in ``steps``).
    runs_per_trial: dict[str, int] = field(default_factory=dict)


@dataclass
class ScenarioResult:
    name: str
    problems: list[str]
    stats: list[PluginStats]

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


class _Script:
    """A sequence of hook calls with the plain values a real run would send."""

    def __init__(self, experiment: str, directory: Path, resumed: bool = False) -> None:
        self.experiment = ExperimentInfo(name=experiment, path=str(directory), local_path=str(directory), resumed=resumed)
        self.directory = directory
        self.calls: list[tuple[str, dict[str, Any], str | None]] = []
        self.trials: dict[str, TrialInfo] = {}

    def trial(self, trial_id: str, config: Mapping[str, Any] | None = None) -> TrialInfo:
        nested = dict(config or {"lr": 0.01, "model": {"depth": 3}})
        trial_dir = self.directory / "tune" / f"trial_{trial_id}"
        trial_dir.mkdir(parents=True, exist_ok=True)
        info = TrialInfo(
            trial_id=trial_id, trial_name=f"conformance_{trial_id}", experiment_name=self.experiment.name,
            config=flatten(nested), nested_config=nested, local_path=str(trial_dir), path=str(trial_dir),
        )
        self.trials[trial_id] = info
        return info

    def start(self, tid: str, resumed: bool = False, last_step: int | None = None) -> None:
        self.calls.append(("trackbridge_trial_start", {"trial": self.trials[tid], "resumed": resumed, "last_step": last_step}, tid))

    def result(self, tid: str, step: int, extra: Mapping[str, Any] | None = None) -> None:
        metrics = {"loss": 1.0 / step, **flatten(dict(extra or {}))}
        self.calls.append(("trackbridge_trial_result", {"trial": self.trials[tid], "step": step, "metrics": metrics, "timestamp": time.time()}, tid))

    def checkpoint(self, tid: str, step: int) -> None:
        path = self.directory / "checkpoints" / f"{tid}_{step:06d}"
        path.mkdir(parents=True, exist_ok=True)
        (path / "model.bin").write_bytes(os.urandom(256))
        info = CheckpointInfo(path=str(path), step=step, metrics={"loss": 1.0 / step})
        self.calls.append(("trackbridge_trial_checkpoint", {"trial": self.trials[tid], "checkpoint": info}, tid))

    def complete(self, tid: str, status: TrialStatus, error: str | None = None) -> None:
        self.calls.append(("trackbridge_trial_complete", {"trial": self.trials[tid], "status": status, "error": error}, tid))

    def run(self, plugin: Any) -> PluginStats:
        dispatcher = Dispatcher(resolve([plugin]), flush_interval=0.0)
        dispatcher.start()
        dispatcher.submit("trackbridge_setup", {})
        dispatcher.submit("trackbridge_experiment_start", {"experiment": self.experiment})
        for hook, kwargs, tid in self.calls:
            dispatcher.submit(hook, kwargs, tid)
        dispatcher.submit("trackbridge_experiment_end", {"experiment": self.experiment})
        dispatcher.close(300)
        return dispatcher.stats()[0]


ODD_VALUES: dict[str, Any] = {
    "nan": math.nan, "inf": math.inf, "none": None, "text": "hello", "flag": True, "big_text": "x" * 10_000,
    "list": [1.0, 2.0, 3.0], "mixed": [1, "a"], "nested": {"a": {"b": 1.5}}, "key with spaces": 1.0,
    "dots.in.key": 2.0, "odd:chars@!": 3.0, "ünïcode": 4.0, "empty": {}, "object": object(),
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


def _scenario(name: str, directory: Path, body: Callable[[Path, list[str]], None]) -> ScenarioResult:
    directory.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    try:
        body(directory, problems)
    except Exception as exc:  # the kit reports, it does not crash the author's test run half-way
        problems.append(f"raised {type(exc).__name__}: {exc}")
    return ScenarioResult(name, problems, [])


def check_plugin(
    make_plugin: PluginFactory,
    read_back: Callable[[Path], StoredRuns] | None,
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
            results.append(_scenario(name, root / name, lambda d, p, s=scenario: s(make_plugin, read_back, d, p)))
    return ConformanceReport(results)


# ------------------------------------------------------------------------------------------- scenarios
def _lifecycle(make_plugin: PluginFactory, read_back, d: Path, problems: list[str]) -> None:
    """Two trials interleaved: results, a checkpoint, one completes, one fails."""
    s = _Script("conformance_lifecycle", d)
    s.trial("a"), s.trial("b", {"lr": 0.1})
    s.start("a"), s.start("b")
    for step in range(1, 6):
        s.result("a", step), s.result("b", step)
        if step == 3:
            s.checkpoint("a", step)
    s.complete("a", TrialStatus.COMPLETED)
    s.complete("b", TrialStatus.FAILED, "Traceback ...\nValueError: diverged")
    _check_stats(s.run(make_plugin(d)), problems)
    if read_back:
        _check_stored(read_back(d), {"a": ([1, 2, 3, 4, 5], "completed"), "b": ([1, 2, 3, 4, 5], "failed")}, problems)


def _unfinished(make_plugin: PluginFactory, read_back, d: Path, problems: list[str]) -> None:
    """The experiment ends while the trial still runs: it must end as unfinished, not as a success."""
    s = _Script("conformance_unfinished", d)
    s.trial("u")
    s.start("u")
    for step in range(1, 4):
        s.result("u", step)
    s.complete("u", TrialStatus.UNFINISHED)
    _check_stats(s.run(make_plugin(d)), problems)
    if read_back:
        _check_stored(read_back(d), {"u": ([1, 2, 3], "unfinished")}, problems)


def _paused_and_resumed(make_plugin: PluginFactory, read_back, d: Path, problems: list[str]) -> None:
    """A scheduler pauses the trial and resumes it: the second start continues the same run."""
    s = _Script("conformance_pause", d)
    s.trial("p")
    s.start("p")
    for step in range(1, 4):
        s.result("p", step)
    s.start("p", resumed=True, last_step=3)
    for step in range(4, 7):
        s.result("p", step)
    s.complete("p", TrialStatus.COMPLETED)
    _check_stats(s.run(make_plugin(d)), problems)
    if read_back:
        _check_stored(read_back(d), {"p": ([1, 2, 3, 4, 5, 6], "completed")}, problems)


def _restored_in_a_new_process(make_plugin: PluginFactory, read_back, d: Path, problems: list[str]) -> None:
    """Tuner.restore: a plugin unpickled from before the run continues the trial's existing run."""
    plugin = make_plugin(d)
    before_run = pickle.dumps(plugin)  # what Tune writes into tuner.pkl
    first = _Script("conformance_restore", d)
    first.trial("r")
    first.start("r")
    for step in range(1, 4):
        first.result("r", step)
    first.complete("r", TrialStatus.UNFINISHED)  # Ctrl+C
    _check_stats(first.run(plugin), problems)
    second = _Script("conformance_restore", d, resumed=True)
    second.trial("r")
    second.start("r", resumed=True, last_step=3)
    for step in range(4, 7):
        second.result("r", step)
    second.complete("r", TrialStatus.COMPLETED)
    _check_stats(second.run(pickle.loads(before_run)), problems)
    if read_back:
        _check_stored(read_back(d), {"r": ([1, 2, 3, 4, 5, 6], "completed")}, problems)


def _odd_values(make_plugin: PluginFactory, read_back, d: Path, problems: list[str]) -> None:
    """NaN, infinities, None, strings, lists, nested dicts, odd keys, objects: never a failed hook."""
    s = _Script("conformance_odd", d)
    s.trial("o", {"fn": repr(len), "huge": {f"k{i}": i for i in range(500)}, "long": "v" * 10_000})
    s.start("o")
    for step in range(1, 4):
        s.result("o", step, ODD_VALUES)
    s.complete("o", TrialStatus.COMPLETED)
    _check_stats(s.run(make_plugin(d)), problems)
    if read_back:
        _check_stored(read_back(d), {"o": ([1, 2, 3], "completed")}, problems)


SCENARIOS: dict[str, Callable[..., None]] = {
    "lifecycle": _lifecycle,
    "unfinished": _unfinished,
    "paused_and_resumed": _paused_and_resumed,
    "restored_in_a_new_process": _restored_in_a_new_process,
    "odd_values": _odd_values,
}
