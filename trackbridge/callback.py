"""TrackBridgeCallback: Ray Tune's callbacks in, plain events out.

Everything here runs on Tune's driver thread, so every method only translates and enqueues: no tracker
I/O, no waiting on a plugin (except backpressure when a plugin's queue is full).
"""

from __future__ import annotations

import atexit
import fnmatch
import logging
import os
import re
import time
import weakref
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS

from trackbridge import loading as plugin_manager
from trackbridge.dispatch import Dispatcher
from trackbridge.errors import TrackerFailure
from trackbridge.events import CheckpointInfo, ExperimentInfo, TrialInfo, TrialStatus
from trackbridge.report import write_report
from trackbridge.secrets import SECRET_PATTERNS as DEFAULT_REDACT_PATTERNS, redact
from trackbridge.values import flatten, plain_config

logger = logging.getLogger("trackbridge")

#: Result fields Tune fills in itself; not metrics unless ``include_auto_metrics=True``.
AUTO_METRICS: frozenset[str] = frozenset(AUTO_RESULT_KEYS) | {
    "trial_id",
    "experiment_tag",
    "done",
    "should_checkpoint",
    "checkpoint_dir_name",
    "date",
    "timestamp",
    "pid",
    "hostname",
    "node_ip",
    "training_iteration",
}
#: Never metrics: the config is logged as the run's parameters, the step is the x-axis.
NEVER_METRICS = frozenset({"config", "training_iteration"})
STEP_KEY = "training_iteration"


@dataclass
class _TrialState:
    info: TrialInfo
    last_step: int | None = None
    open: bool = False  # started and not yet completed
    last_metrics: Mapping[str, Any] | None = None
    last_metrics_step: int | None = None
    replaying: bool = False  # the last result was a replay of an already delivered step


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
    :param isolate: run plugins in processes of their own: True for all, or a list of plugin names. The
        tracker SDK is then imported and run outside Tune's driver (less driver memory, no competition for
        its interpreter lock); events travel pickled, in batches. Plugin objects you passed are copied into
        that process, so their state after the run is not in your copy.
    :param fail_fast: turn the first plugin failure into a ``TrackerFailure`` raised on Tune's thread (at
        its next callback), which stops the Tune run. Off by default: tracking never fails tuning.
    """

    def __init__(
        self,
        plugins: plugin_manager.PluginsArgument,
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
        isolate: bool | Iterable[str] = False,
    ) -> None:
        self._loaded = plugin_manager.resolve(plugins)
        self._requests = [p.request for p in self._loaded]
        self._excludes = tuple(str(e) for e in excludes)
        self._include_auto_metrics = bool(include_auto_metrics)
        if redact is True:
            self._redact_patterns: tuple[str, ...] = DEFAULT_REDACT_PATTERNS
        elif redact is False or redact is None:
            self._redact_patterns = ()
        else:
            if isinstance(redact, str):
                raise TypeError("trackbridge: redact= takes True, False or a list of glob patterns")
            self._redact_patterns = DEFAULT_REDACT_PATTERNS + tuple(str(p) for p in redact)
        if queue_size < 1:
            raise ValueError("trackbridge: queue_size must be at least 1")
        if flush_interval < 0:
            raise ValueError("trackbridge: flush_interval must not be negative")
        self._worker_options = {
            "queue_size": int(queue_size),
            "flush_interval": float(flush_interval),
            "stuck_timeout": float(stuck_timeout),
            "max_retries": int(max_retries),
            "retry_backoff": float(retry_backoff),
        }
        self._fail_fast = bool(fail_fast)
        names = [p.name for p in self._loaded]
        if isolate is True:
            self._isolate: tuple[str, ...] = tuple(names)
        elif not isolate:
            self._isolate = ()
        else:
            if isinstance(isolate, str):
                isolate = [isolate]
            unknown = sorted(set(isolate) - set(names))
            if unknown:
                raise ValueError(f"trackbridge: isolate= names {unknown} that are not among the plugins {names}")
            self._isolate = tuple(isolate)
        self._drain_timeout = drain_timeout
        self._init_runtime()

    # ------------------------------------------------------------------ pickling (tuner.pkl)
    def _init_runtime(self) -> None:
        self._dispatcher: Dispatcher | None = None
        self._trials: dict[str, _TrialState] = {}
        self._experiment: ExperimentInfo | None = None
        self._restored_state: dict[str, Any] | None = None
        self._skipped_replays = 0
        self._report: dict[str, Any] | None = None
        self._used_restored_state: dict[str, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("_loaded", "_dispatcher", "_trials", "_experiment", "_report")
        }
        state["_requests"] = [plugin_manager.picklable_request(r) for r in self._requests]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        restored = state.pop("_restored_state", None)
        self.__dict__.update(state)
        self._loaded = None  # rebuilt in setup(), where a missing SDK or key is reported
        self._init_runtime()
        self._restored_state = restored

    # ------------------------------------------------------------------ Tune's state (experiment checkpoint)
    def get_state(self) -> dict[str, Any] | None:
        return {
            "experiment": self._experiment.name if self._experiment else None,
            "trials": {
                # the config too, so a trial that comes back changed after a restore gets its config_update
                tid: {"last_step": s.last_step, "open": s.open, "config": dict(s.info.config)}
                for tid, s in self._trials.items()
            },
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._restored_state = dict(state or {})
        for tid, saved in (self._restored_state.get("trials") or {}).items():
            if tid not in self._trials:
                # A placeholder; the trial's full info is rebuilt at its next start.
                self._trials[tid] = _TrialState(
                    info=TrialInfo(trial_id=tid, trial_name=tid, experiment_name="", config=saved.get("config") or {}),
                    last_step=saved.get("last_step"),
                    open=False,
                )

    # ------------------------------------------------------------------ lifecycle
    @property
    def plugin_names(self) -> list[str]:
        return [p.name for p in self._ensure_loaded()]

    def get_plugin(self, name: str) -> Any:
        """The plugin object registered under ``name`` (e.g. to inspect it after ``fit()``)."""
        for plugin in self._ensure_loaded():
            if plugin.name == name:
                return plugin.obj
        raise KeyError(f"trackbridge: no plugin {name!r} in this callback; it has {self.plugin_names}")

    def _ensure_loaded(self) -> list[plugin_manager.LoadedPlugin]:
        if self._loaded is None:
            self._loaded = plugin_manager.resolve(list(self._requests))
        return self._loaded

    def _ensure_dispatcher(self) -> Dispatcher:
        if self._dispatcher is None or self._dispatcher.closed:
            self._dispatcher = Dispatcher(
                self._ensure_loaded(), isolate=getattr(self, "_isolate", ()), **self._worker_options
            )
            self._dispatcher.start()
            self._dispatcher.submit("trackbridge_setup", {})
            _live_callbacks.add(self)
        return self._dispatcher

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:  # noqa: D401
        if self._dispatcher is not None and self._dispatcher.closed:
            # The same callback object in a second fit(): a new experiment, from a clean slate.
            restored = self._restored_state if self._restored_state is not self._used_restored_state else None
            self._init_runtime()
            if restored is not None:
                self.set_state(restored)
        self._used_restored_state = self._restored_state
        self._ensure_dispatcher()

    def _check_fail_fast(self) -> None:
        if not self._fail_fast or self._dispatcher is None:
            return
        failure = self._dispatcher.first_error()
        if failure is not None:
            plugin, hook, trial_id, exc = failure
            where = f" for trial {trial_id}" if trial_id else ""
            raise TrackerFailure(
                f"trackbridge: plugin {plugin!r} failed in {hook}{where}: {type(exc).__name__}: {exc} "
                "(fail_fast=True stops the run)"
            ) from exc

    def _ensure_experiment(self, trial: Any) -> ExperimentInfo:
        if self._experiment is None:
            dispatcher = self._ensure_dispatcher()
            name = _safe(lambda: trial.experiment_dir_name) or _safe(lambda: trial.experiment_name) or "tune"
            self._experiment = ExperimentInfo(
                name=str(name),
                path=_safe(lambda: trial.remote_experiment_path),
                local_path=_safe(lambda: trial.local_experiment_path),
                resumed=self._restored_state is not None,
            )
            dispatcher.submit("trackbridge_experiment_start", {"experiment": self._experiment})
        return self._experiment

    def _trial_info(self, trial: Any, experiment: ExperimentInfo) -> TrialInfo:
        raw = dict(getattr(trial, "config", None) or {})
        nested = plain_config(redact(raw, self._redact_patterns, enabled=bool(self._redact_patterns)))
        return TrialInfo(
            trial_id=str(trial.trial_id),
            trial_name=str(trial),
            experiment_name=experiment.name,
            config=flatten(nested),
            nested_config=nested,
            local_path=_safe(lambda: trial.local_path),
            path=_safe(lambda: trial.path),
            experiment_tag=str(getattr(trial, "experiment_tag", "") or ""),
            filesystem=_remote_filesystem(trial),
        )

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._check_fail_fast()
        experiment = self._ensure_experiment(trial)
        dispatcher = self._ensure_dispatcher()
        tid = str(trial.trial_id)
        info_new = self._trial_info(trial, experiment)
        state = self._trials.get(tid)
        resumed = state is not None
        if state is None:
            state = self._trials[tid] = _TrialState(info=info_new)
        old_config = state.info.config
        state.info = info_new
        state.open = True
        dispatcher.submit(
            "trackbridge_trial_start",
            {"trial": info_new, "resumed": resumed, "last_step": state.last_step},
            tid,
        )
        if resumed and old_config and dict(old_config) != dict(info_new.config):
            changes = {k: v for k, v in info_new.config.items() if old_config.get(k, _MISSING) != v}
            if changes:
                dispatcher.submit(
                    "trackbridge_trial_config_update",
                    {"trial": info_new, "step": state.last_step, "changes": changes},
                    tid,
                )

    def _state_for(self, trial: Any) -> _TrialState:
        tid = str(trial.trial_id)
        state = self._trials.get(tid)
        if state is None or not state.open:
            # A result for a trial we have not seen start (TrackBridge added mid-run): start it now.
            self.on_trial_start(0, [], trial)
            state = self._trials[tid]
        return state

    def _metrics(self, result: Mapping[str, Any]) -> dict[str, Any]:
        if self._include_auto_metrics:
            top = {k: v for k, v in result.items() if k not in NEVER_METRICS}
        else:
            top = {k: v for k, v in result.items() if k not in AUTO_METRICS}
        metrics = flatten(top)
        if self._excludes:
            metrics = {k: v for k, v in metrics.items() if not self._excluded(k)}
        return metrics

    def _excluded(self, key: str) -> bool:
        for pattern in self._excludes:
            if key == pattern or key.startswith(pattern + "/") or fnmatch.fnmatchcase(key, pattern):
                return True
        return False

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info) -> None:
        self._check_fail_fast()
        state = self._state_for(trial)
        step = result.get(STEP_KEY)
        if not isinstance(step, int) or isinstance(step, bool):
            step = (state.last_step or 0) + 1
        if state.last_step is not None and step <= state.last_step:
            # A replay after a retry or restore: this step was already delivered.
            self._skipped_replays += 1
            state.replaying = True
            return
        state.replaying = False
        metrics = self._metrics(result)
        state.last_step = step
        state.last_metrics, state.last_metrics_step = metrics, step
        self._dispatcher.submit(
            "trackbridge_trial_result",
            {"trial": state.info, "step": step, "metrics": metrics, "timestamp": time.time()},
            state.info.trial_id,
        )

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info) -> None:
        self._check_fail_fast()
        state = self._state_for(trial)
        if state.replaying:
            # The checkpoint of a replayed step: its step was delivered (with its checkpoint) before.
            self._skipped_replays += 1
            return
        checkpoint_info = CheckpointInfo(
            path=str(checkpoint.path),
            filesystem=getattr(checkpoint, "filesystem", None),
            step=state.last_metrics_step,
            metrics=state.last_metrics or {},
        )
        self._dispatcher.submit(
            "trackbridge_trial_checkpoint",
            {"trial": state.info, "checkpoint": checkpoint_info},
            state.info.trial_id,
        )

    def _complete(self, trial: Any, status: TrialStatus, error: str | None) -> None:
        tid = str(trial.trial_id)
        state = self._trials.get(tid)
        if state is None:
            self._ensure_experiment(trial)
            state = self._trials[tid] = _TrialState(info=self._trial_info(trial, self._experiment))
            self._ensure_dispatcher().submit(
                "trackbridge_trial_start", {"trial": state.info, "resumed": False, "last_step": None}, tid
            )
        elif not state.open:
            return
        state.open = False
        self._ensure_dispatcher().submit(
            "trackbridge_trial_complete", {"trial": state.info, "status": status, "error": error}, tid
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._complete(trial, TrialStatus.COMPLETED, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._complete(trial, TrialStatus.FAILED, _error_text(trial))

    def on_experiment_end(self, trials: list, **info) -> None:
        self.close()
        self._check_fail_fast()

    def close(self) -> dict[str, Any] | None:
        """End every open trial as UNFINISHED, end the experiment, drain and close every plugin.

        Called by Tune at experiment end; also by an exit hook if the driver exits without it.
        """
        dispatcher = self._dispatcher
        if dispatcher is None or dispatcher.closed:
            return self._report
        for state in self._trials.values():
            if state.open:
                state.open = False
                dispatcher.submit(
                    "trackbridge_trial_complete",
                    {"trial": state.info, "status": TrialStatus.UNFINISHED, "error": None},
                    state.info.trial_id,
                )
        if self._experiment is not None:
            dispatcher.submit("trackbridge_experiment_end", {"experiment": self._experiment})
        started = time.monotonic()
        finished = dispatcher.close(self._drain_timeout)
        drain = time.monotonic() - started
        _live_callbacks.discard(self)
        self._report = write_report(
            experiment=self._experiment,
            stats=dispatcher.stats(),
            finished=finished,
            drain_seconds=drain,
            skipped_replays=self._skipped_replays,
        )
        return self._report

    @property
    def report(self) -> dict[str, Any] | None:
        """The delivery report of the last run (also written as ``trackbridge_report.json``)."""
        return self._report


_MISSING = object()
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_live_callbacks: "weakref.WeakSet[TrackBridgeCallback]" = weakref.WeakSet()


def _close_live_callbacks() -> None:
    for callback in list(_live_callbacks):
        try:
            callback.close()
        except Exception:  # pragma: no cover - best effort at interpreter exit
            logger.exception("trackbridge: closing at exit failed")


atexit.register(_close_live_callbacks)


def _safe(getter: Any) -> Any:
    try:
        return getter()
    except Exception:
        return None


def _remote_filesystem(trial: Any) -> Any:
    """Tune's storage filesystem of the trial, or None when it is the local file system."""
    fs = _safe(lambda: trial.storage.storage_filesystem)
    if fs is None or getattr(fs, "type_name", "local") == "local":
        return None
    return fs


def _error_text(trial: Any) -> str | None:
    path = _safe(lambda: trial.error_file)
    if path and os.path.exists(path):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read().strip()
            text = _ANSI.sub("", text)
            return text[-8000:] if text else None
        except OSError:
            pass
    return _safe(lambda: str(trial.get_error())) or "trial failed"
