"""The conformance kit's scenarios: each sends one lifecycle the hook contract allows, through the core's own
emitter and dispatcher, and checks the outcome (see ``trackbridge.testing.conformance``)."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trackbridge.events import ExperimentInfo, LoggedFile, TrialInfo, TrialStatus
from trackbridge.testing.new_interpreter import continue_in_new_interpreter
from trackbridge.testing.script import LifecycleScript, make_trial
from trackbridge.testing.stored import Expected, Reader, check_logged, check_played, check_stored

PluginFactory = Callable[[Path], Any]


@dataclass
class Context:
    """One scenario's inputs and findings."""

    make_plugin: PluginFactory
    read_back: Reader | None
    directory: Path
    timeout: float
    problems: list[str] = field(default_factory=list)

    def check(self, expected: Expected, logged: Mapping[str, list[int]] | None = None, any_order: bool = False) -> None:
        if self.read_back is None:
            return
        stored = self.read_back(self.directory)
        check_stored(stored, expected, self.problems, any_order=any_order)
        if logged:
            check_logged(stored, logged, self.problems)


class Scenario:
    """A lifecycle script whose trials live in the scenario's directory."""

    def __init__(self, ctx: Context, experiment: str, resumed: bool = False) -> None:
        d = str(ctx.directory)
        self.ctx = ctx
        self.script = LifecycleScript(ExperimentInfo(name=experiment, path=d, local_path=d, resumed=resumed))

    def trial(self, trial_id: str, config: Mapping[str, Any] | None = None) -> TrialInfo:
        trial_dir = self.ctx.directory / "tune" / f"trial_{trial_id}"
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

    def run(self, plugin: Any | None = None, pace: float = 0.0) -> set[str]:
        """Play into ``plugin`` (default: a fresh one from the factory); the threads the hooks ran on."""
        plugin = self.ctx.make_plugin(self.ctx.directory) if plugin is None else plugin
        played = self.script.run(plugin, timeout=self.ctx.timeout, pace=pace)
        check_played(played, self.ctx.problems)
        return played.threads


class _Opaque:
    """An object with no numeric meaning."""


#: The bad-input list of TrackBridge's own reliability suite: no hook may fail on any of these.
ODD_VALUES: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "ninf": -math.inf,
    "none": None,
    "text": "hello",
    "flag": True,
    "np_scalar": np.float32(0.5),
    "np_int": np.int64(3),
    "array": np.arange(5, dtype=np.float64),
    "long_text": "x" * 20_000,
    "list": [1.0, 2.0, 3.0],
    "mixed": [1, "a"],
    "nested": {"a": {"b": 1.5}},
    "key with spaces": 1.0,
    "dots.in.key": 2.0,
    "odd:chars@!": 3.0,
    "ünïcode": 4.0,
    "empty": {},
    "object": _Opaque(),
}
_ODD_CONFIG = {"fn": repr(len), "huge": {f"k{i}": i for i in range(500)}, "long": "v" * 10_000, "nan": math.nan}


def lifecycle(ctx: Context) -> None:
    """Two trials interleaved: results 1..5, a checkpoint, one completes, one fails."""
    s = Scenario(ctx, "conformance_lifecycle")
    a, b = s.trial("a"), s.trial("b", {"lr": 0.1})
    s.script.start(a)
    s.script.start(b)
    for step in range(1, 6):
        s.results(a, [step])
        s.results(b, [step])
        if step == 3:
            s.script.write_checkpoint(a, step, ctx.directory)
    s.script.complete(a, TrialStatus.COMPLETED)
    s.script.complete(b, TrialStatus.FAILED, "Traceback ...\nValueError: diverged")
    s.run()
    ctx.check({"a": ([1, 2, 3, 4, 5], "completed"), "b": ([1, 2, 3, 4, 5], "failed")})


def _one_trial(name: str, status: TrialStatus, extra: Mapping[str, Any] | None = None, config: Any = None) -> Any:
    def scenario(ctx: Context) -> None:
        s = Scenario(ctx, f"conformance_{name}")
        trial = s.trial(name[0], config)
        s.script.start(trial)
        s.results(trial, range(1, 4), extra)
        s.script.complete(trial, status)
        s.run()
        ctx.check({name[0]: ([1, 2, 3], status.value)})

    return scenario


def paused_and_resumed(ctx: Context) -> None:
    """A scheduler pauses the trial and resumes it in the same process: the second start continues the run."""
    s = Scenario(ctx, "conformance_pause")
    trial = s.trial("p")
    s.script.start(trial)
    s.results(trial, range(1, 4))
    s.script.start(trial, resumed=True, last_step=3)
    s.results(trial, range(4, 7))
    s.script.complete(trial, TrialStatus.COMPLETED)
    s.run()
    ctx.check({"p": ([1, 2, 3, 4, 5, 6], "completed")})


def resumed_in_a_new_interpreter(ctx: Context) -> None:
    """``Tuner.restore``: the plugin as pickled before the run (``tuner.pkl``) is unpickled in a new Python
    process and continues the trial's run there (nothing may live only in the first process's memory)."""
    plugin = ctx.make_plugin(ctx.directory)
    pickled = pickle.dumps(plugin)
    first = Scenario(ctx, "conformance_restore")
    trial = first.trial("r")
    first.script.start(trial)
    first.results(trial, range(1, 4))
    first.script.complete(trial, TrialStatus.UNFINISHED)  # the driver stopped: Ctrl+C, preemption
    first.run(plugin)
    if ctx.problems:
        return
    second = Scenario(ctx, "conformance_restore", resumed=True)
    second.script.start(trial, resumed=True, last_step=3)
    second.results(trial, range(4, 7))
    second.script.complete(trial, TrialStatus.COMPLETED)
    ctx.problems.extend(continue_in_new_interpreter(pickled, second.script, ctx.directory, ctx.timeout))
    ctx.check({"r": ([1, 2, 3, 4, 5, 6], "completed")})


def config_update(ctx: Context) -> None:
    """A trial resumed with a changed config (``trackbridge_trial_config_update`` without a branch)."""
    s = Scenario(ctx, "conformance_config_update")
    trial = s.trial("c")
    s.script.start(trial)
    s.results(trial, range(1, 4))
    changed = s.trial("c", {"lr": 0.02, "model": {"depth": 3}})
    s.script.start(changed, resumed=True, last_step=3)
    s.script.emit.trial_config_update(changed, 3, {"lr": 0.02})
    s.results(changed, range(4, 7))
    s.script.complete(changed, TrialStatus.COMPLETED)
    s.run()
    ctx.check({"c": ([1, 2, 3, 4, 5, 6], "completed")})


def pbt_step_back(ctx: Context) -> None:
    """PBT's exploit: after step 4 the trial continues from a checkpoint at step 2 with a new config, so
    steps 3 and 4 come again as new results (a branch); every result sent must be stored."""
    s = Scenario(ctx, "conformance_pbt")
    trial = s.trial("b")
    s.script.start(trial)
    s.results(trial, range(1, 5))
    exploited = s.trial("b", {"lr": 0.05, "model": {"depth": 3}})
    s.script.start(exploited, resumed=True, last_step=4)
    s.script.emit.trial_branch(exploited, 2, {"lr": 0.05})
    for step in range(3, 7):
        s.script.result(exploited, step, {"loss": 0.5 / step})
    s.script.complete(exploited, TrialStatus.COMPLETED)
    s.run()
    ctx.check({"b": ([1, 2, 3, 4, 3, 4, 5, 6], "completed")}, any_order=True)


def flush_from_worker_thread(ctx: Context) -> None:
    """Results arrive one by one from a thread that is not the main thread, so the plugin's queue runs dry
    after nearly every one: ``trackbridge_flush`` comes between any two results, mid-trial."""
    s = Scenario(ctx, "conformance_flush")
    a, b = s.trial("a"), s.trial("b")
    s.script.start(a)
    s.script.start(b)
    for step in range(1, 16):
        s.results(a, [step])
        s.results(b, [step])
    s.script.complete(a, TrialStatus.COMPLETED)
    s.script.complete(b, TrialStatus.COMPLETED)
    s.run(pace=0.002)
    steps = list(range(1, 16))
    ctx.check({"a": (steps, "completed"), "b": (steps, "completed")})


def in_trial_log(ctx: Context) -> None:
    """Values logged inside the trial between its results, at steps of their own (1..6, while the results
    are at 1..3), one small file, and the odd values once: none of it may fail or disturb the results."""
    s = Scenario(ctx, "conformance_in_trial_log")
    trial = s.trial("l")
    upload = ctx.directory / "driver_copies" / "notes-0001.txt"  # the driver's copy, stored as "notes.txt"
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
    s.run()
    ctx.check({"l": ([1, 2, 3], "completed")}, {"l": [1, 2, 3, 4, 5, 6]})


#: name -> scenario, in the order the kit runs them.
SCENARIOS: dict[str, Callable[[Context], None]] = {
    "lifecycle": lifecycle,
    "unfinished": _one_trial("unfinished", TrialStatus.UNFINISHED),
    "paused_and_resumed": paused_and_resumed,
    "resumed_in_a_new_interpreter": resumed_in_a_new_interpreter,
    "config_update": config_update,
    "pbt_step_back": pbt_step_back,
    "odd_values": _one_trial("odd_values", TrialStatus.COMPLETED, ODD_VALUES, _ODD_CONFIG),
    "flush_from_worker_thread": flush_from_worker_thread,
    "in_trial_log": in_trial_log,
}

#: One line per scenario: what it sends (shown by ``trackbridge check`` and in failure messages).
DESCRIPTIONS: dict[str, str] = {
    name: " ".join((fn.__doc__ or "").split()) for name, fn in SCENARIOS.items() if fn.__doc__
} | {
    "unfinished": "The experiment ends while the trial runs: status UNFINISHED, which must not look like a success.",
    "odd_values": "NaN, infinities, None, strings, numpy values, lists, nested dicts, odd keys, objects; a huge "
    "config: no hook may fail, loss is stored at 1..3.",
}
