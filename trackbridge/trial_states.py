"""The Ray-free state machine of an experiment's trials: lifecycle order, resumes, replays, config changes.

The Tune callback (and later other sources: in-trial logging, Ray Train) feeds it plain values; it decides
which hook calls follow and emits them through a ``HookEmitter``:

- a trial's first start is ``resumed=False``; every later start (pause/resume, retry, ``Tuner.restore``) is
  ``resumed=True`` with the last delivered step, followed by ``trial_config_update`` when the config changed
  or the trial continues from another trial's checkpoint (a PBT exploit: a *branch*);
- a result at or below the highest step delivered since the trial's last branch is a replay (a retry
  re-running steps from its own checkpoint) and is skipped (counted), and so is the checkpoint of a replayed
  step; after a branch the steps may go back (the donor's checkpoint step + 1): those results are new;
- a trial completes once per start; trials still open when the experiment ends complete as UNFINISHED.

``snapshot``/``restore`` carry what a restored experiment needs (last steps, configs) through Tune's
experiment checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trackbridge.emitter import HookEmitter
from trackbridge.events import CheckpointInfo, ExperimentInfo, LoggedFile, TrialInfo, TrialStatus

_MISSING = object()
#: (step, values, files, timestamp) of one in-trial ``trackbridge.log`` call.
LogEntry = tuple[int, Mapping[str, Any], tuple[LoggedFile, ...], float]


@dataclass
class TrialState:
    """What the machine knows about one trial."""

    info: TrialInfo
    last_step: int | None = None
    #: Started and not yet completed.
    open: bool = False
    last_metrics: Mapping[str, Any] | None = None
    last_metrics_step: int | None = None
    #: The last result was a replay of an already delivered step.
    replaying: bool = False
    #: The highest step delivered since the trial's last branch (None: none yet): results at or below it
    #: are replays. None after a restore too: the plugins' journals (``journal``) know better than Tune's
    #: experiment checkpoint, which lags behind.
    replay_floor: int | None = None
    #: The other trial's checkpoint this trial last continued from.
    branched_from: str | None = None
    #: The next start re-runs the trial from its last checkpoint (a retry after a failure, or the first start
    #: after a restore): starting from the checkpoint it last branched from again is not a new branch then.
    rerun: bool = False


class TrialStateMachine:
    """Turns lifecycle facts about trials into hook calls, in the order the specification promises."""

    def __init__(self, emit: HookEmitter) -> None:
        self._emit = emit
        self.trials: dict[str, TrialState] = {}
        self.experiment: ExperimentInfo | None = None
        #: Results (and their checkpoints) not delivered because their step had been delivered before.
        self.skipped_replays = 0
        #: Starts that continued from another trial's checkpoint (PBT exploits).
        self.branches = 0
        #: In-trial log entries that arrived after their trial had completed (not delivered, counted).
        self.late_logs = 0
        #: In-trial log entries of trials whose start has not been seen yet, delivered right after it.
        self._early_logs: dict[str, list[LogEntry]] = {}

    # ------------------------------------------------------------------ experiment
    def begin_experiment(self, experiment: ExperimentInfo) -> None:
        if self.experiment is None:
            self.experiment = experiment
            self._emit.experiment_start(experiment)

    def end_experiment(self) -> None:
        """Complete every open trial as UNFINISHED (Tune sends nothing for them), then end the experiment."""
        for state in self.trials.values():
            if state.open:
                state.open = False
                self._emit.trial_complete(state.info, TrialStatus.UNFINISHED, None)
        if self.experiment is not None:
            self._emit.experiment_end(self.experiment)

    # ------------------------------------------------------------------ trials
    def is_open(self, trial_id: str) -> bool:
        state = self.trials.get(trial_id)
        return state is not None and state.open

    def start(
        self,
        info: TrialInfo,
        checkpoint_path: str | None = None,
        checkpoint_step: int | None = None,
        *,
        branch: bool = False,
    ) -> None:
        """The trial starts, or starts again (pause/resume, retry, restore).

        ``checkpoint_path``/``checkpoint_step``: the checkpoint the trial starts from, if any. One outside the
        trial's own directory, other than the one it last branched from, makes this start a branch (a PBT
        exploit continues the trial from the donor's checkpoint). ``branch=True``: a branch at
        ``checkpoint_step`` whatever the path (a replay knows it from Tune's records).
        """
        state = self.trials.get(info.trial_id)
        resumed = state is not None
        if state is None:
            state = self.trials[info.trial_id] = TrialState(info=info)
        old_config = state.info.config
        state.info = info
        state.open = True
        self._emit.trial_start(info, resumed, state.last_step)
        changes: dict[str, Any] = {}
        if resumed and old_config and dict(old_config) != dict(info.config):
            changes = {k: v for k, v in info.config.items() if old_config.get(k, _MISSING) != v}
        rerun, state.rerun = state.rerun, False
        foreign = _is_foreign(info, checkpoint_path) and not (rerun and checkpoint_path == state.branched_from)
        if resumed and (branch or foreign):
            # New results from the donor's step on, under the (perhaps) new config: not replays.
            state.replay_floor = None
            state.branched_from = checkpoint_path
            self.branches += 1
            self._emit.trial_branch(info, checkpoint_step, changes)
        elif changes:
            self._emit.trial_config_update(info, state.last_step, changes)
        for entry in self._early_logs.pop(info.trial_id, ()):
            self._emit.trial_log(info, *entry)

    def log(
        self, trial_id: str, step: int, values: Mapping[str, Any], files: Sequence[LoggedFile], timestamp: float
    ) -> bool:
        """Values logged inside a trial. Held until the trial's start when they come first; counted in
        ``late_logs`` (False) when the trial has already completed."""
        state = self.trials.get(trial_id)
        if state is None:
            self._early_logs.setdefault(trial_id, []).append((step, values, tuple(files), timestamp))
            return True
        if not state.open:
            self.late_logs += 1
            return False
        self._emit.trial_log(state.info, step, values, files, timestamp)
        return True

    def result(
        self, trial_id: str, step: int | None, metrics: Mapping[str, Any], timestamp: float | None = None
    ) -> bool:
        """A result of an open trial; ``step`` None means "the next one"; ``timestamp`` None means now. False
        when skipped as a replay."""
        state = self.trials[trial_id]
        if step is None:
            step = (state.last_step or 0) + 1
        if state.replay_floor is not None and step <= state.replay_floor:
            self.skipped_replays += 1
            state.replaying = True
            return False
        state.replaying = False
        state.last_step = state.replay_floor = step
        state.last_metrics, state.last_metrics_step = metrics, step
        self._emit.trial_result(state.info, step, metrics, timestamp)
        return True

    def checkpoint(self, trial_id: str, path: str, filesystem: Any = None) -> bool:
        """A checkpoint of an open trial, belonging to its last result. False when skipped as a replay."""
        state = self.trials[trial_id]
        if state.replaying:  # its step was delivered (with its checkpoint) before
            self.skipped_replays += 1
            return False
        checkpoint = CheckpointInfo(
            path=path, filesystem=filesystem, step=state.last_metrics_step, metrics=state.last_metrics or {}
        )
        self._emit.trial_checkpoint(state.info, checkpoint)
        return True

    def recover(self, trial_id: str) -> None:
        """The trial failed and Tune will retry it from its last checkpoint."""
        state = self.trials.get(trial_id)
        if state is not None:
            state.rerun = True

    def complete(self, info: TrialInfo, status: TrialStatus, error: str | None) -> None:
        """The trial ended. A trial never seen starting is started first; one already completed is ignored."""
        state = self.trials.get(info.trial_id)
        if state is None:
            state = self.trials[info.trial_id] = TrialState(info=info)
            self._emit.trial_start(info, False, None)
        elif not state.open:
            return
        state.open = False
        self._emit.trial_complete(state.info, status, error)

    # ------------------------------------------------------------------ Tune's experiment checkpoint
    def snapshot(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment.name if self.experiment else None,
            "trials": {
                # the config too, so a trial that comes back changed after a restore gets its config_update
                tid: {
                    "last_step": s.last_step,
                    "open": s.open,
                    "config": dict(s.info.config),
                    "branched_from": s.branched_from,
                }
                for tid, s in self.trials.items()
            },
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        for tid, saved in (snapshot.get("trials") or {}).items():
            if tid not in self.trials:
                # A placeholder; the trial's full info arrives with its next start.
                placeholder = TrialInfo(
                    trial_id=tid, trial_name=tid, experiment_name="", config=saved.get("config") or {}
                )
                self.trials[tid] = TrialState(
                    info=placeholder,
                    last_step=saved.get("last_step"),
                    branched_from=saved.get("branched_from"),
                    rerun=True,
                )


def _is_foreign(info: TrialInfo, checkpoint_path: str | None) -> bool:
    """``checkpoint_path`` lies outside the trial's own directory (another trial's checkpoint)."""
    own = (info.path or "").rstrip("/")
    return bool(checkpoint_path and own and not checkpoint_path.startswith(own + "/"))
