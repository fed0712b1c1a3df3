"""A lifecycle script: the hook calls of one experiment, recorded in order, then played into a plugin.

Shared by ``drive`` and the conformance kit, so both send exactly what the core sends: the calls are built
by the core's own ``HookEmitter`` and delivered by the core's own ``Dispatcher`` (worker thread, flushes,
error isolation, counts), with ``trackbridge_setup`` first and ``trackbridge_experiment_end`` last.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trackbridge.delivery import Dispatcher
from trackbridge.emitter import HookEmitter
from trackbridge.events import CheckpointInfo, ExperimentInfo, LoggedFile, TrialInfo, TrialStatus
from trackbridge.ledger import PluginStats
from trackbridge.loading import resolve
from trackbridge.transport import DeliveryOptions, HookCall
from trackbridge.values import flatten


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
        dispatcher = Dispatcher(resolve([plugin]), DeliveryOptions(flush_interval=flush_interval))
        dispatcher.start()
        emit = HookEmitter(dispatcher.submit)
        emit.setup()
        emit.experiment_start(self.experiment)
        for call in self.calls:
            dispatcher.submit(call)
        emit.experiment_end(self.experiment)
        dispatcher.close(timeout)
        return dispatcher.stats()[0]
