"""TrackBridgeCallback: the thin Ray Tune adapter. Tune's callbacks in, plain lifecycle facts out.

Everything here runs on Tune's driver thread, so every method only translates (``tune_translate``) and feeds
the trial state machine (``trial_states``), which emits hook calls into the dispatcher: no tracker I/O, no
waiting on a plugin (except backpressure when a plugin's queue is full).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Sequence
from typing import Any

from ray.tune import Callback

from trackbridge import loading
from trackbridge.bridge import Bridge
from trackbridge.events import TrialInfo, TrialStatus
from trackbridge.secrets import SECRET_PATTERNS
from trackbridge.settings import CallbackSettings
from trackbridge.transport import DeliveryOptions
from trackbridge.trial_states import TrialStateMachine
from trackbridge.tune_translate import (
    CHECKPOINT_DIR_KEY,
    TRAIN_CHECKPOINT_KEY,
    error_text,
    experiment_info,
    remote_filesystem,
    result_metrics,
    result_step,
    safe,
    starting_checkpoint,
    trial_info,
)


class TrackBridgeCallback(Callback):
    """One Ray Tune callback for every experiment tracker.

    :param plugins: which trackers, as names (``["wandb", "mlflow"]``), a dict of names to options
        (``{"mlflow": {"tracking_uri": "sqlite:///m.db"}}``), plugin objects, or a mix.
    :param excludes: metric names (flattened with ``/``, glob patterns allowed) never passed to plugins;
        a name also excludes everything under it (``"eval"`` excludes ``"eval/loss"``).
    :param include_auto_metrics: also pass Tune's auto-filled result fields (``time_this_iter_s``,
        ``pid``, ``hostname``, ...) as metrics.
    :param redact: glob patterns of config keys whose values are replaced by ``***REDACTED***`` before any
        plugin sees them. True (default): TrackBridge's list (passwords, secrets, tokens, API keys); a list:
        those patterns in addition; False: none.
    :param queue_size: events each plugin's queue holds before Tune waits (backpressure).
    :param flush_interval: at most how long a buffering plugin keeps results before ``trackbridge_flush``.
    :param drain_timeout: how long ``Tuner.fit()`` waits at the end for the plugins to finish.
    :param stuck_timeout: how long a full queue may stay full before its plugin is declared stuck and
        disabled (its missed events are counted), so a hung tracker never stalls tuning for ever.
    :param max_retries: how often a call that failed with a transient error (``TransientError`` or a type
        in the plugin's ``retry_on``) is retried, with exponential backoff from ``retry_backoff`` seconds.
    :param isolate: which plugins run in processes of their own: ``"auto"`` (default) those whose class sets
        ``prefers_own_process`` (of the built-in ones, MLflow: its SQL store does much Python work per
        value), True for all, False for none, or a list of plugin names. An isolated plugin's SDK is imported
        and run outside Tune's driver (less driver memory, no competition for its interpreter lock); events
        travel pickled, in batches; starting the process costs about a second of CPU. Plugin objects you
        passed are copied into that process, so their state after the run is not in your copy.
    :param fail_fast: turn the first plugin failure into a ``TrackerFailure`` raised on Tune's thread (at
        its next callback), which stops the Tune run. Off by default: tracking never fails tuning.
    :param log_drain_timeout: when a trial that used ``trackbridge.log`` ends, how long Tune waits (at most)
        for the values it logged to arrive before its runs are completed; usually a fraction of a second.
    """

    def __init__(
        self,
        plugins: loading.PluginsArgument,
        *,
        excludes: Iterable[str] = (),
        include_auto_metrics: bool = False,
        redact: bool | Sequence[str] = True,
        queue_size: int = 10_000,
        flush_interval: float = 0.5,
        drain_timeout: float | None = 600.0,
        stuck_timeout: float = 300.0,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        fail_fast: bool = False,
        isolate: bool | str | Iterable[str] = "auto",
        log_drain_timeout: float = 10.0,
    ) -> None:
        self._bridge = Bridge(
            plugins,
            excludes=excludes,
            include_auto_metrics=include_auto_metrics,
            redact=redact,
            queue_size=queue_size,
            flush_interval=flush_interval,
            drain_timeout=drain_timeout,
            stuck_timeout=stuck_timeout,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            fail_fast=fail_fast,
            isolate=isolate,
            log_drain_timeout=log_drain_timeout,
        )
        self._restored_state: dict[str, Any] | None = None
        self._used_restored_state: dict[str, Any] | None = None
        #: Per trial, the checkpoint its last result named that Tune has not (yet) reported (see _unreported).
        self._unreported: dict[str, tuple[str, Any]] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_bridge" not in state:  # a tuner.pkl written by TrackBridge 0.1.0 before the bridge existed
            state = _state_of_0_1_0(state)
        self.__dict__.update(state)
        self.__dict__.setdefault("_unreported", {})

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_unreported"] = {}  # the run's own bookkeeping (holds pyarrow filesystems): not pickled
        return state

    # ------------------------------------------------------------------ Tune's experiment checkpoint
    def get_state(self) -> dict[str, Any] | None:
        machine = self._bridge.machine
        return machine.snapshot() if machine is not None else self._restored_state

    def set_state(self, state: dict[str, Any]) -> None:
        # Tune restores callback state before it calls setup(); the machine of this fit() takes it there.
        self._restored_state = dict(state or {})

    # ------------------------------------------------------------------ plugins
    @property
    def plugin_names(self) -> list[str]:
        return [p.name for p in self._bridge.plugins()]

    def get_plugin(self, name: str) -> Any:
        """The plugin object registered under ``name`` (e.g. to inspect it after ``fit()``)."""
        return self._bridge.get_plugin(name)

    def companion_callbacks(self) -> list[Any]:
        """Tune callbacks the plugins ask to run next to this one (``TrackerPlugin.companion_callbacks``):
        ``RunConfig(callbacks=[cb, *cb.companion_callbacks()])``."""
        return self._bridge.companion_callbacks()

    # ------------------------------------------------------------------ lifecycle
    def setup(self, stop: Any = None, num_samples: Any = None, total_num_samples: Any = None, **info: Any) -> None:
        if self._bridge.finished:
            # The same callback object in a second fit(): a new experiment, from a clean slate (restored
            # only if Tune handed over a state for this fit).
            fresh = self._restored_state is not self._used_restored_state
            self._bridge.reset()
            if not fresh:
                self._restored_state = None
        self._used_restored_state = self._restored_state
        self._bridge.start(self._restored_state)
        self._bridge.listen_for_trial_logs()

    def _machine_for(self, trial: Any) -> TrialStateMachine:
        machine = self._bridge.start(self._restored_state)
        if machine.experiment is None:
            machine.begin_experiment(experiment_info(trial, resumed=self._restored_state is not None))
        return machine

    def _info(self, trial: Any, machine: TrialStateMachine) -> TrialInfo:
        assert machine.experiment is not None
        s = self._bridge.settings
        return trial_info(trial, machine.experiment, s.redact_extra, s.redact_enabled)

    def _deliver_unreported(self, trial: Any, machine: TrialStateMachine) -> None:
        """The checkpoint of the trial's last result, if Tune never reported it: Tune persists the checkpoint
        reported with the result on which a scheduler pauses the trial (PBT before an exploit) but calls no
        ``on_checkpoint`` for it (Ray 2.60). Delivered before the trial's next event, if still on disk."""
        pending = self._unreported.pop(str(trial.trial_id), None)
        if pending is None or not machine.is_open(str(trial.trial_id)):
            return
        path, filesystem = pending
        if filesystem is None and not os.path.isdir(path):
            return  # already deleted (num_to_keep): nothing to send
        machine.checkpoint(str(trial.trial_id), path, filesystem)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._bridge.check_fail_fast()
        machine = self._machine_for(trial)
        self._deliver_unreported(trial, machine)
        checkpoint_path, checkpoint_step = starting_checkpoint(trial)
        machine.start(self._info(trial, machine), checkpoint_path, checkpoint_step)
        self._bridge.deliver_trial_logs()

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        # Tune retries the failed trial from its last checkpoint (not a PBT exploit, even when that checkpoint
        # is the donor's of an earlier exploit).
        machine = self._machine_for(trial)
        machine.recover(str(trial.trial_id))

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        # Tune calls this once per loop turn: hand over what trials logged in the meantime.
        self._bridge.deliver_trial_logs()

    def _open_machine(self, trial: Any) -> TrialStateMachine:
        machine = self._machine_for(trial)
        if not machine.is_open(str(trial.trial_id)):
            # A result for a trial we have not seen start (TrackBridge added mid-run): start it now.
            machine.start(self._info(trial, machine))
        return machine

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self._bridge.check_fail_fast()
        machine = self._open_machine(trial)
        self._deliver_unreported(trial, machine)
        s = self._bridge.settings
        metrics = result_metrics(result, include_auto=s.include_auto_metrics, excludes=s.excludes)
        trial_id = str(trial.trial_id)
        machine.result(trial_id, result_step(result), metrics)
        checkpoint_name = result.get(CHECKPOINT_DIR_KEY)
        trial_path = safe(lambda: trial.path)
        if isinstance(checkpoint_name, str) and checkpoint_name and trial_path:
            self._unreported[trial_id] = (posixpath.join(trial_path, checkpoint_name), remote_filesystem(trial))
        train_checkpoint = result.get(TRAIN_CHECKPOINT_KEY)
        if isinstance(train_checkpoint, str) and train_checkpoint:
            # Ray Train inside a Tune trial: Train persisted the checkpoint and TuneReportCallback reports only
            # its path; Tune's on_checkpoint does not fire for it.
            machine.checkpoint(trial_id, train_checkpoint, remote_filesystem(trial))

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
        self._bridge.check_fail_fast()
        machine = self._open_machine(trial)
        self._unreported.pop(str(trial.trial_id), None)
        machine.checkpoint(str(trial.trial_id), str(checkpoint.path), getattr(checkpoint, "filesystem", None))

    def _complete(self, trial: Any, status: TrialStatus, error: str | None) -> None:
        machine = self._machine_for(trial)
        self._deliver_unreported(trial, machine)
        self._bridge.finish_trial_logs(str(trial.trial_id))
        machine.complete(self._info(trial, machine), status, error)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._complete(trial, TrialStatus.COMPLETED, None)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._complete(trial, TrialStatus.FAILED, error_text(trial))

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        machine = self._bridge.machine
        if machine is not None:
            for trial in trials if self._unreported else ():
                self._deliver_unreported(trial, machine)
        self.close()
        self._bridge.check_fail_fast()

    def close(self) -> dict[str, Any] | None:
        """End every open trial as UNFINISHED, end the experiment, drain and close every plugin.

        Called by Tune at experiment end; also by an exit hook if the driver exits without it.
        """
        return self._bridge.close()

    @property
    def report(self) -> dict[str, Any] | None:
        """The delivery report of the last run (also written as ``trackbridge_report.json``)."""
        return self._bridge.report


def _state_of_0_1_0(old: dict[str, Any]) -> dict[str, Any]:
    """The state of a callback pickled by TrackBridge 0.1.0 (its options were attributes of its own)."""
    patterns = tuple(old.get("_redact_patterns", SECRET_PATTERNS))
    delivery = dict(old.get("_worker_options") or {})
    settings = CallbackSettings(
        excludes=tuple(old.get("_excludes", ())),
        include_auto_metrics=bool(old.get("_include_auto_metrics", False)),
        redact_enabled=bool(patterns),
        redact_extra=tuple(p for p in patterns if p not in SECRET_PATTERNS),
        delivery=DeliveryOptions(**delivery),
        drain_timeout=old.get("_drain_timeout", 600.0),
        fail_fast=bool(old.get("_fail_fast", False)),
        isolate=tuple(old.get("_isolate", ())),
    )
    bridge = Bridge.__new__(Bridge)
    bridge.__setstate__({"requests": list(old.get("_requests", [])), "settings": settings})
    return {"_bridge": bridge, "_restored_state": old.get("_restored_state"), "_used_restored_state": None}
