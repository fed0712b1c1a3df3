"""The one typed way to emit each hook: ``HookEmitter`` has a method per hook of the specification.

Every event the core sends (from the Tune callback, the conformance kit, the test driver) is built here as a
``HookCall``, never from a hand-written hook name: the names come from the specification's own functions
(``hookspecs.trackbridge_trial_result.__name__``), and ``HookCall`` refuses a name the specification does
not have. A misspelt hook is an error, never a silent no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trackbridge import hookspecs
from trackbridge.events import CheckpointInfo, ExperimentInfo, TrialInfo, TrialStatus

SETUP = hookspecs.trackbridge_setup.__name__
EXPERIMENT_START = hookspecs.trackbridge_experiment_start.__name__
TRIAL_START = hookspecs.trackbridge_trial_start.__name__
TRIAL_CONFIG_UPDATE = hookspecs.trackbridge_trial_config_update.__name__
TRIAL_RESULT = hookspecs.trackbridge_trial_result.__name__
TRIAL_CHECKPOINT = hookspecs.trackbridge_trial_checkpoint.__name__
TRIAL_COMPLETE = hookspecs.trackbridge_trial_complete.__name__
FLUSH = hookspecs.trackbridge_flush.__name__
EXPERIMENT_END = hookspecs.trackbridge_experiment_end.__name__


@dataclass(frozen=True)
class HookCall:
    """One hook call on its way to a plugin: the hook, its keyword arguments, the trial it concerns.

    Picklable (a plugin may run in a process of its own), and checked against the specification.
    """

    hook: str
    kwargs: Mapping[str, Any]
    trial_id: str | None = None
    #: ``time.monotonic()`` when it was emitted (for the lag in the delivery report).
    emitted: float = field(default_factory=time.monotonic, compare=False)

    def __post_init__(self) -> None:
        if self.hook not in hookspecs.ALL_HOOKS:
            raise ValueError(f"trackbridge: {self.hook!r} is not a hook of the specification ({', '.join(hookspecs.ALL_HOOKS)})")


Sink = Callable[[HookCall], None]


class HookEmitter:
    """One method per hook; each builds the ``HookCall`` and hands it to ``sink`` (a dispatcher's ``submit``,
    or a list's ``append`` for a script that is played later)."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def setup(self) -> None:
        self._sink(HookCall(SETUP, {}))

    def experiment_start(self, experiment: ExperimentInfo) -> None:
        self._sink(HookCall(EXPERIMENT_START, {"experiment": experiment}))

    def trial_start(self, trial: TrialInfo, resumed: bool, last_step: int | None) -> None:
        self._sink(HookCall(TRIAL_START, {"trial": trial, "resumed": resumed, "last_step": last_step}, trial.trial_id))

    def trial_config_update(self, trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
        kwargs = {"trial": trial, "step": step, "changes": dict(changes)}
        self._sink(HookCall(TRIAL_CONFIG_UPDATE, kwargs, trial.trial_id))

    def trial_result(self, trial: TrialInfo, step: int, metrics: Mapping[str, Any], timestamp: float | None = None) -> None:
        kwargs = {"trial": trial, "step": step, "metrics": metrics, "timestamp": time.time() if timestamp is None else timestamp}
        self._sink(HookCall(TRIAL_RESULT, kwargs, trial.trial_id))

    def trial_checkpoint(self, trial: TrialInfo, checkpoint: CheckpointInfo) -> None:
        self._sink(HookCall(TRIAL_CHECKPOINT, {"trial": trial, "checkpoint": checkpoint}, trial.trial_id))

    def trial_complete(self, trial: TrialInfo, status: TrialStatus, error: str | None) -> None:
        self._sink(HookCall(TRIAL_COMPLETE, {"trial": trial, "status": status, "error": error}, trial.trial_id))

    def experiment_end(self, experiment: ExperimentInfo) -> None:
        self._sink(HookCall(EXPERIMENT_END, {"experiment": experiment}))
