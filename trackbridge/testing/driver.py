"""Drive plugins through the hook sequence without Ray (see ``trackbridge.testing``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trackbridge.events import CheckpointInfo, ExperimentInfo, LoggedFile, TrialInfo, TrialStatus
from trackbridge.ledger import PluginStats
from trackbridge.markers import hookimpl
from trackbridge.testing.script import LifecycleScript, make_trial


@dataclass(frozen=True)
class ScriptedLog:
    """One call of ``trackbridge.log`` / ``log_artifact`` inside a scripted trial (``trackbridge_trial_log``)."""

    #: sent after the result of this step (and its checkpoint); 0: before the first result
    after: int
    #: the call's own step (independent of the results' steps; may repeat or go down)
    step: int
    values: Mapping[str, Any] = field(default_factory=dict)
    files: Sequence[LoggedFile] = ()


@dataclass
class ScriptedTrial:
    info: TrialInfo
    results: Sequence[Mapping[str, Any]] = ()
    #: steps after whose result a checkpoint event is sent, with the directory to report
    checkpoints: Mapping[int, str] = field(default_factory=dict)
    status: TrialStatus = TrialStatus.COMPLETED
    error: str | None = None
    #: in-trial logs, in the order sent; those after the last result are sent just before the completion
    logs: Sequence[ScriptedLog] = ()


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
    logs: Sequence[ScriptedLog] = (),
) -> ScriptedTrial:
    info = make_trial(trial_id, config=config, experiment_name=experiment_name, directory=local_path)
    return ScriptedTrial(info, list(results), dict(checkpoints or {}), status, error, list(logs))


def drive(
    plugin: Any,
    trials: Iterable[ScriptedTrial],
    *,
    experiment: ExperimentInfo | None = None,
    flush_interval: float = 0.0,
    timeout: float = 120.0,
) -> PluginStats:
    """Run ``plugin`` through setup, experiment start, each trial in turn (start, results at steps 1..N,
    checkpoints and in-trial logs between them, completion), and experiment end, through the core's own
    dispatcher.

    Returns the plugin's delivery counts (delivered / failed / dropped)."""
    trials = list(trials)
    experiment = experiment or ExperimentInfo(name=trials[0].info.experiment_name if trials else "scripted")
    script = LifecycleScript(experiment)
    for t in trials:
        script.start(t.info)
        _send_logs(script, t, 0)
        for step, result in enumerate(t.results, start=1):
            script.result(t.info, step, result)
            if step in t.checkpoints:
                script.checkpoint(t.info, step, t.checkpoints[step], result)
            _send_logs(script, t, step)
        script.complete(t.info, t.status, t.error)
    return script.play(plugin, flush_interval=flush_interval, timeout=timeout)


def _send_logs(script: LifecycleScript, trial: ScriptedTrial, position: int) -> None:
    """The trial's logs that go right after result ``position`` (0: before the first result; logs placed
    before 0 or after the last result go first or last)."""
    for log in trial.logs:
        if min(max(log.after, 0), len(trial.results)) == position:
            script.log(trial.info, log.step, log.values, log.files)


class RecordingPlugin:
    """Records every hook call as ``(hook, summary)``; used by TrackBridge's own tests and by authors.

    ``events`` is a list of tuples; ``thread_names`` the threads the hooks ran on.
    """

    name = "recorder"

    def __init__(self, name: str = "recorder", sleep: float = 0.0) -> None:
        self.name = name
        self.sleep = float(sleep)
        self.events: list[tuple[Any, ...]] = []
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
    def trackbridge_trial_log(
        self, trial: TrialInfo, step: int, values: Mapping[str, Any], files: Sequence[LoggedFile]
    ) -> None:
        self._record("log", trial.trial_id, step, dict(values), [f.name for f in files])

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
    def by_trial(self) -> dict[str, list[tuple[Any, ...]]]:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for event in self.events:
            if event[0] in ("trial_start", "config_update", "result", "checkpoint", "log", "complete"):
                out.setdefault(event[1], []).append(event)
        return out
