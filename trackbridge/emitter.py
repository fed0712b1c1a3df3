"""``HookEmitter``: the one typed way to emit each hook of the specification (a method per hook), building the
``HookCall`` and handing it to a sink (a dispatcher's ``submit``, or a list's ``append`` for a script played
later)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trackbridge.events import CheckpointInfo, ExperimentInfo, LoggedFile, TrialInfo, TrialStatus
from trackbridge.transport import (
    EXPERIMENT_END,
    EXPERIMENT_START,
    SETUP,
    TRIAL_CHECKPOINT,
    TRIAL_COMPLETE,
    TRIAL_CONFIG_UPDATE,
    TRIAL_LOG,
    TRIAL_RESULT,
    TRIAL_START,
    HookCall,
)

Sink = Callable[[HookCall], None]


class HookEmitter:
    """One method per hook; each builds the ``HookCall`` and hands it to ``sink`` (a dispatcher's ``submit``,
    or a list's ``append`` for a script that is played later)."""

    def __init__(self, sink: Sink, journal_mode: str = "live") -> None:
        self._sink = sink
        #: How the plugins' delivery journals treat the experiment (``journal.LIVE``, ``FILL``, ``IGNORE``).
        self.journal_mode = journal_mode

    def setup(self) -> None:
        self._sink(HookCall(SETUP, {}))

    def experiment_start(self, experiment: ExperimentInfo) -> None:
        call = HookCall(EXPERIMENT_START, {"experiment": experiment}, journal_mode=self.journal_mode)
        self._sink(call)

    def trial_start(self, trial: TrialInfo, resumed: bool, last_step: int | None) -> None:
        self._sink(HookCall(TRIAL_START, {"trial": trial, "resumed": resumed, "last_step": last_step}, trial.trial_id))

    def trial_config_update(self, trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
        kwargs = {"trial": trial, "step": step, "changes": dict(changes)}
        self._sink(HookCall(TRIAL_CONFIG_UPDATE, kwargs, trial.trial_id))

    def trial_branch(self, trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
        """``trial_config_update`` for a trial continuing from another trial's checkpoint at ``step`` (PBT)."""
        kwargs = {"trial": trial, "step": step, "changes": dict(changes)}
        self._sink(HookCall(TRIAL_CONFIG_UPDATE, kwargs, trial.trial_id, branch=True))

    def trial_result(
        self, trial: TrialInfo, step: int, metrics: Mapping[str, Any], timestamp: float | None = None
    ) -> None:
        kwargs = {
            "trial": trial,
            "step": step,
            "metrics": metrics,
            "timestamp": time.time() if timestamp is None else timestamp,
        }
        self._sink(HookCall(TRIAL_RESULT, kwargs, trial.trial_id))

    def trial_checkpoint(self, trial: TrialInfo, checkpoint: CheckpointInfo) -> None:
        self._sink(HookCall(TRIAL_CHECKPOINT, {"trial": trial, "checkpoint": checkpoint}, trial.trial_id))

    def trial_log(
        self,
        trial: TrialInfo,
        step: int,
        values: Mapping[str, Any],
        files: Sequence[LoggedFile] = (),
        timestamp: float | None = None,
    ) -> None:
        kwargs = {
            "trial": trial,
            "step": step,
            "values": values,
            "files": tuple(files),
            "timestamp": time.time() if timestamp is None else timestamp,
        }
        self._sink(HookCall(TRIAL_LOG, kwargs, trial.trial_id))

    def trial_complete(self, trial: TrialInfo, status: TrialStatus, error: str | None) -> None:
        self._sink(HookCall(TRIAL_COMPLETE, {"trial": trial, "status": status, "error": error}, trial.trial_id))

    def experiment_end(self, experiment: ExperimentInfo) -> None:
        self._sink(HookCall(EXPERIMENT_END, {"experiment": experiment}))
