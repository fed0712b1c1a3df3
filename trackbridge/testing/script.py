"""A lifecycle script: the hook calls of one experiment, recorded in order, then played into a plugin.

Shared by ``drive`` and the conformance kit, so both send exactly what the core sends: the calls are built
by the core's own ``HookEmitter`` and delivered by the core's own ``Dispatcher`` (worker thread, flushes,
error isolation, counts), with ``trackbridge_setup`` first and ``trackbridge_experiment_end`` last.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trackbridge.delivery import Dispatcher
from trackbridge.emitter import HookEmitter
from trackbridge.events import CheckpointInfo, ExperimentInfo, LoggedFile, TrialInfo, TrialStatus
from trackbridge.ledger import PluginStats
from trackbridge.loading import resolve
from trackbridge.transport import DeliveryOptions, HookCall
from trackbridge.values import flatten

#: How many characters of a value a hook error message shows.
_SHOWN = 40


@dataclass
class Played:
    """What happened when a script was played into a plugin."""

    stats: PluginStats
    #: One line per hook that raised: the hook, the exception, the trial and step of its first failure.
    errors: list[str] = field(default_factory=list)
    #: Set when the plugin did not finish within the timeout: what it was doing (from the delivery report).
    unfinished: str | None = None
    #: Names of the threads the plugin's hooks ran on.
    threads: set[str] = field(default_factory=set)


class _HookWatch:
    """Records, through pluggy's public hook-call monitoring, the threads hooks run on and every failure."""

    def __init__(self) -> None:
        self.failures: dict[str, list[str]] = {}
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def before(self, hook_name: str, hook_impls: Any, kwargs: Mapping[str, Any]) -> None:
        with self._lock:
            self.threads.add(threading.current_thread().name)

    def after(self, outcome: Any, hook_name: str, hook_impls: Any, kwargs: Mapping[str, Any]) -> None:
        exc = outcome.exception
        if exc is None:
            return
        where = []
        if kwargs.get("trial") is not None:
            where.append(f"trial {kwargs['trial'].trial_id}")
        if kwargs.get("step") is not None:
            where.append(f"step {kwargs['step']}")
        values = kwargs.get("metrics") or kwargs.get("values")
        if values:
            shown = ", ".join(f"{k}={v!r:.{_SHOWN}}" for k, v in list(values.items())[:8])
            more = ", ..." if len(values) > 8 else ""
            where.append(f"values {{{shown}{more}}}")
        with self._lock:
            self.failures.setdefault(hook_name, []).append(f"{type(exc).__name__}: {exc} ({'; '.join(where)})")

    def lines(self) -> list[str]:
        out = []
        for hook, failures in self.failures.items():
            more = f" ({len(failures)} calls failed)" if len(failures) > 1 else ""
            out.append(f"{hook} raised {failures[0]}{more}")
        return out


def make_trial(
    trial_id: str,
    *,
    config: Mapping[str, Any] | None = None,
    experiment_name: str = "scripted",
    trial_name: str | None = None,
    directory: str | None = None,
) -> TrialInfo:
    """A ``TrialInfo`` as the callback builds it: the config flattened with ``/`` and kept nested."""
    nested = dict(config or {})
    return TrialInfo(
        trial_id=trial_id,
        trial_name=trial_name or f"scripted_{trial_id}",
        experiment_name=experiment_name,
        config=flatten(nested),
        nested_config=nested,
        local_path=directory,
        path=directory,
    )


class LifecycleScript:
    """Hook calls recorded in order (``emit`` is a ``HookEmitter``), then ``play``-ed into a plugin."""

    def __init__(self, experiment: ExperimentInfo) -> None:
        self.experiment = experiment
        self.calls: list[HookCall] = []
        self.emit = HookEmitter(self.calls.append)

    def start(self, trial: TrialInfo, resumed: bool = False, last_step: int | None = None) -> None:
        self.emit.trial_start(trial, resumed, last_step)

    def result(self, trial: TrialInfo, step: int, metrics: Mapping[str, Any]) -> None:
        self.emit.trial_result(trial, step, flatten(dict(metrics)), time.time())

    def log(self, trial: TrialInfo, step: int, values: Mapping[str, Any], files: Sequence[LoggedFile] = ()) -> None:
        """Values (flattened with ``/``, as the core does) and files logged inside the trial, at its own step."""
        self.emit.trial_log(trial, step, flatten(dict(values)), files, time.time())

    def checkpoint(self, trial: TrialInfo, step: int, path: str, metrics: Mapping[str, Any] | None = None) -> None:
        self.emit.trial_checkpoint(trial, CheckpointInfo(path=path, step=step, metrics=flatten(dict(metrics or {}))))

    def write_checkpoint(self, trial: TrialInfo, step: int, directory: Path) -> None:
        """A real checkpoint directory (one small file) under ``directory``, then its checkpoint event."""
        path = directory / "checkpoints" / f"{trial.trial_id}_{step:06d}"
        path.mkdir(parents=True, exist_ok=True)
        (path / "model.bin").write_bytes(os.urandom(256))
        self.checkpoint(trial, step, str(path), {"loss": 1.0 / step})

    def complete(self, trial: TrialInfo, status: TrialStatus, error: str | None = None) -> None:
        self.emit.trial_complete(trial, status, error)

    def play(self, plugin: Any, *, flush_interval: float = 0.0, timeout: float = 300.0) -> PluginStats:
        """Deliver setup, experiment start, the recorded calls and experiment end to ``plugin`` through
        the core's dispatcher; returns what was delivered, failed or dropped."""
        return self.run(plugin, flush_interval=flush_interval, timeout=timeout).stats

    def run(self, plugin: Any, *, flush_interval: float = 0.0, timeout: float = 300.0, pace: float = 0.0) -> Played:
        """``play``, with what the conformance kit reports: each hook's failures, the threads hooks ran on,
        and what the plugin was doing if it did not finish within ``timeout`` seconds (then it is abandoned,
        as the drain timeout of a real run abandons it). With ``pace`` > 0, the calls are submitted from a
        thread of their own, one every ``pace`` seconds, so the plugin's queue runs dry between them and
        flushes come between any two calls."""
        [loaded] = resolve([plugin])
        watch = _HookWatch()
        loaded.manager.add_hookcall_monitoring(watch.before, watch.after)
        options = DeliveryOptions(flush_interval=flush_interval, stuck_timeout=timeout)
        dispatcher = Dispatcher([loaded], options)
        dispatcher.start()
        emit = HookEmitter(dispatcher.submit)
        emit.setup()
        emit.experiment_start(self.experiment)
        if pace > 0:
            producer = threading.Thread(target=self._submit_paced, args=(dispatcher, pace), name="kit-producer")
            producer.start()
            producer.join()
        else:
            for call in self.calls:
                dispatcher.submit(call)
        emit.experiment_end(self.experiment)
        finished = dispatcher.close(timeout)[loaded.name]
        stats = dispatcher.stats()[0]
        unfinished = None
        if not finished:
            running = dispatcher.workers[0].ledger.running_call()
            if running is not None:
                reason = f"stuck in {running[0]} (running for {running[1]:.0f}s)"
            else:
                reason = stats.disabled_reason or "no reason recorded"
            unfinished = f"did not finish within {timeout:g}s: {reason}"
        return Played(stats, watch.lines(), unfinished, set(watch.threads))

    def _submit_paced(self, dispatcher: Dispatcher, pace: float) -> None:
        for call in self.calls:
            dispatcher.submit(call)
            time.sleep(pace)
