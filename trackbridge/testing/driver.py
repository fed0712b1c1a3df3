"""Drive plugins through the hook sequence without Ray (see ``trackbridge.testing``)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from trackbridge.dispatch import Dispatcher
from trackbridge.events import CheckpointInfo, ExperimentInfo, TrialInfo, TrialStatus
from trackbridge.loading import resolve
from trackbridge.markers import hookimpl
from trackbridge.values import flatten


@dataclass
class ScriptedTrial:
    info: TrialInfo
    results: Sequence[Mapping[str, Any]] = ()
    #: steps after whose result a checkpoint event is sent, with the directory to report
    checkpoints: Mapping[int, str] = field(default_factory=dict)
    status: TrialStatus = TrialStatus.COMPLETED
    error: str | None = None


def scripted_trial(
    trial_id: str,
    *,
    results: Sequence[Mapping[str, Any]] = (),
    config: Mapping[str, Any] | None = None,
    experiment_name: str = "scripted",
    checkpoints: Mapping[int, str] | None = None,
    status: TrialStatus = TrialStatus.COMPLETED,
    error: str | None = None,
    local_path: str | None = None,
) -> ScriptedTrial:
    nested = dict(config or {})
    info = TrialInfo(
        trial_id=trial_id,
        trial_name=f"scripted_{trial_id}",
        experiment_name=experiment_name,
        config=flatten(nested),
        nested_config=nested,
        local_path=local_path,
        path=local_path,
    )
    return ScriptedTrial(info, list(results), dict(checkpoints or {}), status, error)


def drive(
    plugin: Any,
    trials: Iterable[ScriptedTrial],
    *,
    experiment: ExperimentInfo | None = None,
    flush_interval: float = 0.0,
    timeout: float = 120.0,
) -> Any:
    """Run ``plugin`` through setup, experiment start, each trial (in turn), and experiment end.

    Returns the dispatcher's stats for the plugin (delivered / failed counts)."""
    trials = list(trials)
    experiment = experiment or ExperimentInfo(name=trials[0].info.experiment_name if trials else "scripted")
    dispatcher = Dispatcher(resolve([plugin]), flush_interval=flush_interval)
    dispatcher.start()
    dispatcher.submit("trackbridge_setup", {})
    dispatcher.submit("trackbridge_experiment_start", {"experiment": experiment})
    for t in trials:
        tid = t.info.trial_id
        dispatcher.submit("trackbridge_trial_start", {"trial": t.info, "resumed": False, "last_step": None}, tid)
        for step, result in enumerate(t.results, start=1):
            metrics = flatten(dict(result))
            dispatcher.submit(
                "trackbridge_trial_result",
                {"trial": t.info, "step": step, "metrics": metrics, "timestamp": time.time()},
                tid,
            )
            if step in t.checkpoints:
                dispatcher.submit(
                    "trackbridge_trial_checkpoint",
                    {"trial": t.info, "checkpoint": CheckpointInfo(path=t.checkpoints[step], step=step, metrics=metrics)},
                    tid,
                )
        dispatcher.submit("trackbridge_trial_complete", {"trial": t.info, "status": t.status, "error": t.error}, tid)
    dispatcher.submit("trackbridge_experiment_end", {"experiment": experiment})
    dispatcher.close(timeout)
    return dispatcher.stats()[0]


class RecordingPlugin:
    """Records every hook call as ``(hook, summary)``; used by TrackBridge's own tests and by authors.

    ``events`` is a list of tuples; ``thread_names`` the threads the hooks ran on.
    """

    name = "recorder"

    def __init__(self, name: str = "recorder", sleep: float = 0.0) -> None:
        self.name = name
        self.sleep = float(sleep)
        self.events: list[tuple] = []
        self.thread_names: set[str] = set()
        self._lock = threading.Lock()

    def _record(self, *event: Any) -> None:
        if self.sleep:
            time.sleep(self.sleep)
        with self._lock:
            self.events.append(event)
            self.thread_names.add(threading.current_thread().name)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @hookimpl
    def trackbridge_setup(self) -> None:
        self._record("setup")

    @hookimpl
    def trackbridge_experiment_start(self, experiment: ExperimentInfo) -> None:
        self._record("experiment_start", experiment.name)

    @hookimpl
    def trackbridge_trial_start(self, trial: TrialInfo, resumed: bool, last_step: int | None) -> None:
        self._record("trial_start", trial.trial_id, resumed, last_step, dict(trial.config))

    @hookimpl
    def trackbridge_trial_config_update(self, trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
        self._record("config_update", trial.trial_id, step, dict(changes))

    @hookimpl
    def trackbridge_trial_result(self, trial: TrialInfo, step: int, metrics: Mapping[str, Any]) -> None:
        self._record("result", trial.trial_id, step, dict(metrics))

    @hookimpl
    def trackbridge_trial_checkpoint(self, trial: TrialInfo, checkpoint: CheckpointInfo) -> None:
        self._record("checkpoint", trial.trial_id, checkpoint.step, checkpoint.path)

    @hookimpl
    def trackbridge_trial_complete(self, trial: TrialInfo, status: TrialStatus, error: str | None) -> None:
        self._record("complete", trial.trial_id, status.value, error)

    @hookimpl
    def trackbridge_flush(self) -> None:
        self._record("flush")

    @hookimpl
    def trackbridge_experiment_end(self, experiment: ExperimentInfo) -> None:
        self._record("experiment_end", experiment.name)

    # -- views used by tests
    def by_trial(self) -> dict[str, list[tuple]]:
        out: dict[str, list[tuple]] = {}
        for event in self.events:
            if event[0] in ("trial_start", "config_update", "result", "checkpoint", "complete"):
                out.setdefault(event[1], []).append(event)
        return out
