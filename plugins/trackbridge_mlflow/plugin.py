"""TrackBridge's MLflow plugin: one MLflow run per Tune trial.

Mapping (details and options in docs/mlflow.md):

- experiment start -> the MLflow experiment (created if missing), optionally one parent run
- trial start      -> ``client.create_run`` (or the trial's existing run reopened when it resumes)
- config           -> params (long values, odd keys and PBT changes handled, see ``limits``)
- result           -> metrics, buffered and written with ``log_batch`` at each flush
- checkpoint       -> artifacts under ``checkpoints/<step>`` (``save_artifact=True``)
- complete         -> ``set_terminated`` FINISHED / FAILED (+ ``error`` tag) / KILLED (unfinished)

Every call goes through ``MlflowClient`` with an explicit run id (never the fluent active-run stack), on
the plugin's own worker thread, so no locks are needed.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from trackbridge import hookimpl
from trackbridge.events import CheckpointInfo, ExperimentInfo, TrialInfo, TrialStatus
from trackbridge.values import SCALAR, WarnOnce, classify, mask_uri, to_float

from trackbridge_mlflow import store
from trackbridge_mlflow.buffer import FlushError, MetricBuffer
from trackbridge_mlflow.limits import (
    KeyMap,
    Limits,
    chunked,
    format_value,
    sanitize_key,
    truncate,
    truncate_tail,
)
from trackbridge_mlflow.options import MlflowOptions

logger = logging.getLogger("trackbridge")

#: Metric (numeric values) and tag (other values) prefix for config values that change during a trial.
CONFIG_PREFIX = "config/"
#: Where long param values go with ``long_params="tag"`` / ``"artifact"``.
LONG_PARAM_PREFIX = "params/"
TAG_ERROR = "error"
TAG_STATUS = "trackbridge.status"
_MLFLOW_STATUS = {
    TrialStatus.COMPLETED: "FINISHED",
    TrialStatus.FAILED: "FAILED",
    TrialStatus.UNFINISHED: "KILLED",
}
_TOKEN_ENV = "MLFLOW_TRACKING_TOKEN"
_MISSING = object()


@dataclass
class _TrialRun:
    """What the plugin knows about one trial's MLflow run."""

    run_id: str
    trial_name: str
    metric_keys: KeyMap
    param_keys: KeyMap
    #: MLflow param name -> the value stored in MLflow (params can never change once logged).
    params: dict[str, str] = field(default_factory=dict)
    #: The trial's config as last seen (original flattened keys); None values included.
    config: dict[str, Any] = field(default_factory=dict)
    #: Latest value written per config-change metric/tag name (to skip writing the same value again).
    config_logged: dict[str, Any] = field(default_factory=dict)
    #: Results at or below this step are already in the run (a run reopened after a restore).
    skip_through: int | None = None
    running: bool = True
    has_error_tag: bool = False


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b or format_value(a) == format_value(b)


def _is_numeric_config(value: Any) -> bool:
    return isinstance(value, (bool, int, float))


class MlflowPlugin:
    """Log every Tune trial as an MLflow run. Options: see ``MlflowOptions`` and docs/mlflow.md."""

    name = "mlflow"
    requires = ("mlflow",)
    install_hint = 'pip install "trackbridge[mlflow]"'

    def __init__(
        self,
        *,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        experiment_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        tracking_token: str | None = None,
        save_artifact: bool = False,
        log_params_on_trial_end: bool = False,
        parent_run: bool = False,
        long_params: str = "truncate",
        artifact_location: str | None = None,
        flush_retries: int = 3,
    ) -> None:
        self.options = MlflowOptions(
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
            experiment_name=experiment_name,
            tags=dict(tags or {}),
            tracking_token=tracking_token,
            save_artifact=save_artifact,
            log_params_on_trial_end=log_params_on_trial_end,
            parent_run=parent_run,
            long_params=long_params,
            artifact_location=artifact_location,
            flush_retries=flush_retries,
        )
        self._init_runtime()

    def __repr__(self) -> str:
        uri = mask_uri(self.options.tracking_uri)
        return f"MlflowPlugin(tracking_uri={uri!r}, experiment_name={self.options.experiment_name!r})"

    # ------------------------------------------------------------------ pickling (tuner.pkl)
    def _init_runtime(self) -> None:
        self._client: Any = None
        self._metric_cls: Any = None
        self._param_cls: Any = None
        self._tag_cls: Any = None
        self._limits = Limits()
        self._tracking_uri: str | None = None
        self._system_tags: dict[str, str] = {}
        self._experiment: ExperimentInfo | None = None
        self._experiment_id: str | None = None
        self._parent_run_id: str | None = None
        self._trials: dict[str, _TrialRun] = {}
        self._run_labels: dict[str, str] = {}
        self._buffer: MetricBuffer | None = None
        self._warn = WarnOnce(self.name)
        self._token_env_before: Any = _MISSING
        self._unfinished = 0
        #: Results skipped because the reopened run already had their step (see ``_TrialRun.skip_through``).
        self.skipped_replays = 0

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the callback (and with it a plugin object) into tuner.pkl: no token, no handles.
        return {"options": self.options.without_secrets()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.options = state["options"]
        self._init_runtime()

    # ------------------------------------------------------------------ setup: the slow, experiment-free part
    @hookimpl
    def trackbridge_setup(self) -> None:
        """Import MLflow (~1 s) and open the store (~2 s for a new SQLite file) while Tune starts trials."""
        if self.options.tracking_token and self._token_env_before is _MISSING:
            self._token_env_before = os.environ.get(_TOKEN_ENV, None)
            os.environ[_TOKEN_ENV] = self.options.tracking_token
        if self._client is not None:  # the same plugin object in a second fit(): the store is open
            return
        import mlflow  # noqa: F401 - the expensive import, done here on purpose
        from mlflow.entities import Metric, Param, RunTag

        self._metric_cls, self._param_cls, self._tag_cls = Metric, Param, RunTag
        self._limits = Limits.from_mlflow()
        uri = store.resolve_tracking_uri(self.options.tracking_uri)
        client = store.make_client(uri, self.options.registry_uri)
        self._system_tags = store.system_tags()
        self._tracking_uri = uri
        self._buffer = MetricBuffer(self._log_metrics, self._limits.metrics_per_batch, self.options.flush_retries)
        self._client = client
        logger.info("trackbridge: mlflow: logging to %s", mask_uri(uri))

    def _ready_client(self) -> Any:
        if self._client is None:  # setup failed (or was skipped): try again, or raise its error here
            self.trackbridge_setup()
        return self._client

    def _log_metrics(self, run_id: str, metrics: list[Any]) -> None:
        self._client.log_batch(run_id, metrics=metrics, synchronous=True)

    # ------------------------------------------------------------------ experiment
    @hookimpl
    def trackbridge_experiment_start(self, experiment: ExperimentInfo) -> None:
        # Per-experiment state starts empty, also when one plugin object serves a second fit().
        self._experiment = experiment
        self._experiment_id = None
        self._parent_run_id = None
        self._trials = {}
        self._run_labels = {}
        self._unfinished = 0
        self.skipped_replays = 0
        self._ensure_experiment()

    def _ensure_experiment(self) -> str:
        if self._experiment_id is not None:
            return self._experiment_id
        if self._experiment is None:
            raise RuntimeError("trackbridge: mlflow: a trial event arrived before experiment_start")
        client = self._ready_client()
        name = self.options.experiment_name or self._experiment.name
        experiment_id = store.get_or_create_experiment(client, name, self.options.artifact_location)
        if self.options.parent_run:
            self._parent_run_id = self._open_parent_run(client, experiment_id)
        self._experiment_id = experiment_id
        return experiment_id

    def _open_parent_run(self, client: Any, experiment_id: str) -> str:
        tune_name = self._experiment.name
        if self._experiment.resumed:
            run = store.find_parent_run(client, experiment_id, tune_name)
            if run is not None:
                if run.info.status != "RUNNING":
                    client.update_run(run.info.run_id, status="RUNNING")
                return run.info.run_id
        tags = self._base_tags()
        tags.update({store.TAG_EXPERIMENT_NAME: tune_name, store.TAG_ROLE: store.ROLE_PARENT})
        run = client.create_run(experiment_id, run_name=tune_name, tags=self._clean_tags(tags))
        return run.info.run_id

    @hookimpl
    def trackbridge_experiment_end(self, experiment: ExperimentInfo) -> None:
        errors: list[str] = []
        try:
            if self._buffer is not None:
                self._buffer.flush(final=True, label=self._label)
        except FlushError as exc:
            errors.append(str(exc))
        client = self._client
        if client is not None:
            for state in self._trials.values():
                if state.running:  # no trial_complete arrived (should not happen): nothing stays RUNNING
                    errors.extend(self._try(lambda s=state: self._terminate(s, TrialStatus.UNFINISHED, None)))
            if self._parent_run_id is not None:
                status = "KILLED" if self._unfinished else "FINISHED"
                errors.extend(self._try(lambda: client.set_terminated(self._parent_run_id, status)))
                self._parent_run_id = None
        if self._token_env_before is not _MISSING:
            if self._token_env_before is None:
                os.environ.pop(_TOKEN_ENV, None)
            else:
                os.environ[_TOKEN_ENV] = self._token_env_before
            self._token_env_before = _MISSING
        if self.skipped_replays:
            logger.info("trackbridge: mlflow: skipped %d results already in their runs", self.skipped_replays)
        if errors:
            raise RuntimeError("; ".join(errors))

    @staticmethod
    def _try(action: Callable[[], Any]) -> list[str]:
        try:
            action()
        except Exception as exc:
            return [f"{type(exc).__name__}: {exc}"]
        return []

    # ------------------------------------------------------------------ trials
    @hookimpl
    def trackbridge_trial_start(self, trial: TrialInfo, resumed: bool, last_step: int | None) -> None:
        state = self._trials.get(trial.trial_id)
        if state is not None:  # the same trial again in this process: pause/resume, retry, PBT exploit
            if not state.running:
                self._client.update_run(state.run_id, status="RUNNING")
                state.running = True
        else:
            state = self._open_run(trial, search=resumed or bool(self._experiment and self._experiment.resumed))
        self._apply_config(state, trial.config, last_step, log_params=not self.options.log_params_on_trial_end)

    def _ensure_run(self, trial: TrialInfo) -> _TrialRun:
        """The trial's run; opened now if its start failed or was never seen (find it first, then create)."""
        state = self._trials.get(trial.trial_id)
        if state is None:
            state = self._open_run(trial, search=True)
            self._apply_config(state, trial.config, None, log_params=not self.options.log_params_on_trial_end)
        return state

    def _open_run(self, trial: TrialInfo, *, search: bool) -> _TrialRun:
        experiment_id = self._ensure_experiment()
        client = self._client
        existing = None
        if search:
            existing = store.find_trial_run(client, experiment_id, trial.trial_id, trial.experiment_name)
        keymaps = KeyMap(self._limits.key_length), KeyMap(self._limits.key_length)
        if existing is not None:
            state = self._reopen(existing, trial, *keymaps)
        else:
            tags = self._base_tags()
            tags.update({
                store.TAG_TRIAL_ID: trial.trial_id,
                store.TAG_TRIAL_NAME: trial.trial_name,
                store.TAG_EXPERIMENT_NAME: trial.experiment_name,
                store.TAG_ROLE: store.ROLE_TRIAL,
            })
            if self._parent_run_id is not None:
                tags[store.TAG_PARENT_RUN_ID] = self._parent_run_id
            run = client.create_run(experiment_id, run_name=trial.trial_name, tags=self._clean_tags(tags))
            state = _TrialRun(run.info.run_id, trial.trial_name, *keymaps)
        self._trials[trial.trial_id] = state
        self._run_labels[state.run_id] = f"run {state.run_id} (trial {trial.trial_name})"
        return state

    def _reopen(self, run: Any, trial: TrialInfo, metric_keys: KeyMap, param_keys: KeyMap) -> _TrialRun:
        """Continue a run a previous process created (``Tuner.restore``): no second run per trial."""
        run_id = run.info.run_id
        if run.info.status != "RUNNING":
            self._client.update_run(run_id, status="RUNNING")
        tags = dict(run.data.tags or {})
        state = _TrialRun(
            run_id,
            trial.trial_name,
            metric_keys,
            param_keys,
            params=dict(store.run_params(run)),
            skip_through=store.highest_step(run, CONFIG_PREFIX),
            has_error_tag=TAG_ERROR in tags,
        )
        for key, value in (run.data.metrics or {}).items():
            if key.startswith(CONFIG_PREFIX):
                state.config_logged[key] = value
        for key, value in tags.items():
            if key.startswith(CONFIG_PREFIX):
                state.config_logged[key] = value
        logger.info(
            "trackbridge: mlflow: trial %s continues its run %s (results through step %s already logged)",
            trial.trial_name, run_id, state.skip_through,
        )
        return state

    def _base_tags(self) -> dict[str, str]:
        tags = dict(self._system_tags)
        for key, value in self.options.tags.items():
            tags[sanitize_key(key, self._limits.key_length)] = value
        return tags

    def _clean_tags(self, tags: Mapping[str, Any]) -> dict[str, str]:
        limit = self._limits.tag_value_length
        return {k: truncate(format_value(v), limit) for k, v in tags.items()}

    def _label(self, run_id: str) -> str:
        return self._run_labels.get(run_id, f"run {run_id}")

    # ------------------------------------------------------------------ config -> params
    @hookimpl
    def trackbridge_trial_config_update(self, trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
        state = self._ensure_run(trial)
        self._apply_config(state, changes, step, log_params=not self.options.log_params_on_trial_end)

    def _stored_param(self, name: str, value: Any) -> tuple[str, dict[str, str], dict[str, str]]:
        """(param value as stored, extra tags, extra text artifacts) for one config value."""
        text = format_value(value)
        limit = self._limits.param_value_length
        if len(text) <= limit:
            return text, {}, {}
        mode = self.options.long_params
        if mode == "tag":
            tag = sanitize_key(LONG_PARAM_PREFIX + name, self._limits.key_length)
            return (
                truncate(text, limit, f"tag {tag}"),
                {tag: truncate(text, self._limits.tag_value_length)},
                {},
            )
        if mode == "artifact":
            path = f"{LONG_PARAM_PREFIX}{name}.txt"
            return truncate(text, limit, f"artifact {path}"), {}, {path: text}
        return truncate(text, limit), {}, {}

    def _apply_config(self, state: _TrialRun, config: Mapping[str, Any], step: int | None, *, log_params: bool) -> None:
        """Log config keys not yet logged as params; log changed values of logged ones as config metrics/tags.

        MLflow refuses to change a logged param ("changing param values is not allowed"), and PBT changes
        hyperparameters mid-trial, so a changed value never goes to params again.
        """
        new_params: dict[str, str] = {}
        extra_tags: dict[str, str] = {}
        artifacts: dict[str, str] = {}
        changes: dict[str, Any] = {}
        for key, value in config.items():
            name = state.param_keys(key)
            previous = state.config.get(key, _MISSING)
            if previous is not _MISSING:
                changed = not _same(previous, value)
            elif name in state.params:
                changed = state.params[name] != self._stored_param(name, value)[0]
            else:
                changed = False
            if changed:
                changes[key] = (previous, value)
            if log_params and name not in state.params:
                stored, tags, files = self._stored_param(name, value)
                if tags or files or stored != format_value(value):
                    self._warn(
                        f"long-param:{key}",
                        f"config value {key!r} has {len(format_value(value))} characters, more than MLflow's "
                        f"{self._limits.param_value_length}; long_params={self.options.long_params!r}",
                    )
                new_params[name] = stored
                extra_tags.update(tags)
                artifacts.update(files)
            if name != key:
                self._warn(f"param-name:{key}", f"config key {key!r} is logged as param {name!r}")
            state.config[key] = value
        if new_params:
            Param = self._param_cls
            items = [Param(k, v) for k, v in new_params.items()]
            for chunk in chunked(items, self._limits.params_tags_per_batch):
                self._client.log_batch(state.run_id, params=list(chunk), synchronous=True)
            state.params.update(new_params)
        if extra_tags:
            self._set_tags(state.run_id, extra_tags)
        for path, text in artifacts.items():
            self._client.log_text(state.run_id, text, path)
        if changes:
            self._log_config_changes(state, changes, step)

    def _log_config_changes(self, state: _TrialRun, changes: Mapping[str, tuple[Any, Any]], step: int | None) -> None:
        """Numeric values -> metric ``config/<key>`` at the first step that used them (``step + 1``; the
        value the trial started with at step 0); anything else -> tag ``config/<key>``."""
        now = int(time.time() * 1000)
        at = (step or 0) + 1
        metrics: list[Any] = []
        tags: dict[str, str] = {}
        Metric = self._metric_cls
        for key, (previous, value) in changes.items():
            if _is_numeric_config(value):
                name = state.metric_keys(CONFIG_PREFIX + key)
                number = float(value)
                if name not in state.config_logged and _is_numeric_config(previous):
                    metrics.append(Metric(name, float(previous), now, 0))
                if name in state.config_logged and _same(state.config_logged[name], number):
                    continue
                metrics.append(Metric(name, number, now, at))
                state.config_logged[name] = number
            else:
                name = sanitize_key(CONFIG_PREFIX + key, self._limits.key_length)
                text = truncate(format_value(value), self._limits.tag_value_length)
                if state.config_logged.get(name) == text:
                    continue
                tags[name] = text
                state.config_logged[name] = text
        if metrics:
            self._buffer.add(state.run_id, metrics)
        if tags:
            self._set_tags(state.run_id, tags)

    def _set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        Tag = self._tag_cls
        items = [Tag(k, v) for k, v in tags.items()]
        for chunk in chunked(items, self._limits.params_tags_per_batch):
            self._client.log_batch(run_id, tags=list(chunk), synchronous=True)

    # ------------------------------------------------------------------ results -> metrics
    @hookimpl
    def trackbridge_trial_result(
        self, trial: TrialInfo, step: int, metrics: Mapping[str, Any], timestamp: float
    ) -> None:
        state = self._ensure_run(trial)
        if state.skip_through is not None and step <= state.skip_through:
            self.skipped_replays += 1
            return
        Metric = self._metric_cls
        millis = int(timestamp * 1000)
        out = []
        for key, value in metrics.items():
            if classify(value) != SCALAR:
                self._warn(
                    f"value:{key}",
                    f"metric {key!r} is not a number ({type(value).__name__}); MLflow metrics are numbers, "
                    "so it is not logged",
                )
                continue
            name = state.metric_keys(key)
            if name != key:
                self._warn(f"name:{key}", f"metric {key!r} is logged as {name!r} (MLflow's naming rules)")
            out.append(Metric(name, to_float(value), millis, int(step)))
        if out:
            self._buffer.add(state.run_id, out)

    @hookimpl
    def trackbridge_flush(self) -> None:
        if self._buffer is not None and self._client is not None:
            self._buffer.flush(label=self._label)

    # ------------------------------------------------------------------ checkpoints -> artifacts
    @hookimpl
    def trackbridge_trial_checkpoint(self, trial: TrialInfo, checkpoint: CheckpointInfo) -> None:
        if not self.options.save_artifact:
            return
        state = self._ensure_run(trial)
        scratch = tempfile.mkdtemp(prefix="trackbridge-mlflow-")
        try:
            local = checkpoint.local_directory(scratch)
            if not os.path.isdir(local):
                raise FileNotFoundError(
                    f"checkpoint {checkpoint.path} (step {checkpoint.step}) is gone; was it deleted by "
                    "CheckpointConfig(num_to_keep=...) before it could be logged?"
                )
            sub = str(checkpoint.step) if checkpoint.step is not None else os.path.basename(checkpoint.path.rstrip("/"))
            self._client.log_artifacts(state.run_id, local, artifact_path=f"checkpoints/{sub}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    # ------------------------------------------------------------------ completion
    @hookimpl
    def trackbridge_trial_complete(self, trial: TrialInfo, status: TrialStatus, error: str | None) -> None:
        state = self._ensure_run(trial)
        flush_error: FlushError | None = None
        try:
            self._buffer.flush([state.run_id], label=self._label)
        except FlushError as exc:  # still end the run; the points stay buffered for the next flushes
            flush_error = exc
        if self.options.log_params_on_trial_end:
            self._apply_config(state, trial.config, None, log_params=True)
        self._terminate(state, status, error)
        if flush_error is not None:
            raise flush_error

    def _terminate(self, state: _TrialRun, status: TrialStatus, error: str | None) -> None:
        tags = {TAG_STATUS: status.value}
        if status is TrialStatus.FAILED:
            tags[TAG_ERROR] = truncate_tail(error or "trial failed", self._limits.tag_value_length)
        if status is TrialStatus.UNFINISHED:
            self._unfinished += 1
        self._set_tags(state.run_id, tags)
        if status is TrialStatus.FAILED:
            state.has_error_tag = True
        elif status is TrialStatus.COMPLETED and state.has_error_tag:
            self._client.delete_tag(state.run_id, TAG_ERROR)  # it failed before, then succeeded when resumed
            state.has_error_tag = False
        self._client.set_terminated(state.run_id, _MLFLOW_STATUS[status])
        state.running = False
