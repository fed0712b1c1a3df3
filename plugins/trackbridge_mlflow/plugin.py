"""TrackBridge's MLflow plugin: one MLflow run per Tune trial.

Mapping (details and options in docs/mlflow.md):

- experiment start -> the MLflow experiment (created if missing), optionally one parent run
- trial start      -> ``client.create_run`` (or the trial's existing run reopened when it resumes, see ``held``)
- config           -> params (long values, odd keys and PBT changes handled, see ``writer`` and ``limits``)
- config update    -> changed values as ``config/<key>`` metrics or tags, and the metric ``trackbridge/exploit``
                      = 1 at the step the trial continues from (a PBT exploit)
- result           -> metrics, buffered and written with ``log_batch`` at each flush (a step that comes
                      again after an exploit is a second point at that step)
- in-trial log     -> its numbers as metrics at its own step (the same buffer); files as artifacts under
                      ``logged/`` (see ``logged``)
- checkpoint       -> artifacts under ``checkpoints/<step>`` (``save_artifact=True``)
- complete         -> ``set_terminated`` FINISHED / FAILED (+ ``error`` tag) / KILLED (unfinished)

Every call goes through ``MlflowClient`` with an explicit run id (never the fluent active-run stack), on
the plugin's own worker thread, so no locks are needed.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trackbridge import (
    CheckpointInfo,
    ExperimentInfo,
    LoggedFile,
    StoredSummary,
    TrackerPlugin,
    TrialInfo,
    TrialStatus,
    hookimpl,
    mask_uri,
)
from trackbridge_mlflow import logged, store
from trackbridge_mlflow.buffer import FlushError, MetricBuffer
from trackbridge_mlflow.held import HeldSteps
from trackbridge_mlflow.limits import KeyMap, Limits, sanitize_key
from trackbridge_mlflow.options import MlflowOptions
from trackbridge_mlflow.writer import RunWriter, TrialRun


class MlflowPlugin(TrackerPlugin[MlflowOptions], name="mlflow", requires=("mlflow",)):
    """Log every Tune trial as an MLflow run.

    Options (all keyword, all optional; declared and documented in ``MlflowOptions``, see docs/mlflow.md):
    ``tracking_uri``, ``registry_uri``, ``experiment_name``, ``tags`` (dict), ``tracking_token`` (secret:
    never pickled or logged), ``save_artifact`` (False), ``log_params_on_trial_end`` (False), ``parent_run``
    (False), ``long_params`` ("truncate", "tag" or "artifact"), ``artifact_location``, ``flush_retries`` (3).
    """

    # MLflow's SQL store builds and runs SQLAlchemy statements in the calling process: about 0.2 ms of Python
    # per metric value, plus Alembic's migrations when a store is new. In a thread of Tune's driver that work
    # holds the driver's interpreter lock and slows Tune's loop (docs/performance.md); so by default
    # (``isolate="auto"``) this plugin runs in a process of its own.
    prefers_own_process = True
    checkpoint_option = "save_artifact"

    def reset_state(self) -> None:
        # Never pickled (the base pickles only the options without the token): no handles, no open runs.
        super().reset_state()
        self._client: Any = None
        self._writer: RunWriter | None = None
        self._limits = Limits()
        self._tracking_uri: str | None = None
        self._system_tags: dict[str, str] = {}
        self._experiment: ExperimentInfo | None = None
        self._experiment_id: str | None = None
        self._parent_run_id: str | None = None
        self._trials: dict[str, TrialRun] = {}
        self._run_labels: dict[str, str] = {}
        self._buffer: MetricBuffer | None = None
        self._unfinished = 0
        #: Result and in-trial points not logged because their reopened run already held them (see ``held``).
        self.held_skipped = 0

    # ------------------------------------------------------------------ hints for tools
    @classmethod
    def offline_options(cls, directory: str) -> dict[str, Any]:
        """A SQLite store in ``directory``; none when ``MLFLOW_TRACKING_URI`` is set (the user's choice wins)."""
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return {}
        return {"tracking_uri": f"sqlite:///{directory}/mlflow.db"}

    def view_command(self, experiment: ExperimentInfo | None) -> str | None:
        """``mlflow ui --backend-store-uri <tracking URI, credentials masked>``: the URI setup resolved, else the
        option or ``$MLFLOW_TRACKING_URI`` (so it works in the driver when the plugin ran in its own process);
        None when none of them is known yet."""
        uri = self._tracking_uri or self.options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            return None
        return f"mlflow ui --backend-store-uri {shlex.quote(mask_uri(uri) or '')}"

    def stored_summary(self, experiment: ExperimentInfo) -> StoredSummary | None:
        """The experiment's trial runs in the store, read with ``MlflowClient``."""
        from trackbridge_mlflow.stored import summarize

        uri = self._tracking_uri or store.resolve_tracking_uri(self.options.tracking_uri)
        client = store.make_client(uri, self.options.registry_uri, self.options.tracking_token, self.log)
        return summarize(client, self.options.experiment_name or experiment.name, experiment.name)

    def tracker_destination(self) -> str | None:
        """The tracking URI (a relative SQLite path made absolute) and the MLflow experiment option."""
        return store.destination(store.resolve_tracking_uri(self.options.tracking_uri), self.options.experiment_name)

    # ------------------------------------------------------------------ setup: the slow, experiment-free part
    @hookimpl
    def trackbridge_setup(self) -> None:
        """Import MLflow (~1 s) and open the store (~2 s for a new SQLite file) while Tune starts trials."""
        if self._client is not None:  # the same plugin object in a second fit(): the store is open
            return
        import mlflow  # noqa: F401 - the expensive import, done here on purpose

        self._limits = Limits.from_mlflow()
        uri = store.resolve_tracking_uri(self.options.tracking_uri)
        client = store.make_client(uri, self.options.registry_uri, self.options.tracking_token, self.log)
        self._system_tags = store.system_tags(self.log)
        self._tracking_uri = uri
        self._buffer = MetricBuffer(self._log_metrics, self._limits.metrics_per_batch, self.options.flush_retries)
        self._writer = RunWriter(client, self._limits, self._buffer, self.options.long_params, self.warn)
        self._client = client
        self.log.info("trackbridge: mlflow: logging to %s", mask_uri(uri))

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
        self._ensure_experiment()

    def _ensure_experiment(self) -> str:
        if self._experiment_id is not None:
            return self._experiment_id
        if self._experiment is None:
            raise RuntimeError("trackbridge: mlflow: a trial event arrived before experiment_start")
        client = self._ready_client()
        name = self.options.experiment_name or self._experiment.name
        experiment_id = store.get_or_create_experiment(client, name, self.options.artifact_location, self.log)
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
        run = client.create_run(experiment_id, run_name=tune_name, tags=self._writer.clean_tags(tags))
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
            return  # a changed config follows in trackbridge_trial_config_update, with the step it applies at
        state = self._open_run(trial, search=resumed or bool(self._experiment and self._experiment.resumed))
        self._writer.apply_config(state, trial.config, last_step, log_params=not self.options.log_params_on_trial_end)

    def _ensure_run(self, trial: TrialInfo) -> TrialRun:
        """The trial's run; opened now if its start failed or was never seen (find it first, then create)."""
        state = self._trials.get(trial.trial_id)
        if state is None:
            state = self._open_run(trial, search=True)
            self._writer.apply_config(state, trial.config, None, log_params=not self.options.log_params_on_trial_end)
        return state

    def _open_run(self, trial: TrialInfo, *, search: bool) -> TrialRun:
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
            tags.update(store.trial_tags(trial.trial_id, trial.trial_name, trial.experiment_name, self._parent_run_id))
            run = client.create_run(experiment_id, run_name=trial.trial_name, tags=self._writer.clean_tags(tags))
            state = TrialRun(run.info.run_id, trial.trial_name, *keymaps)
        self._trials[trial.trial_id] = state
        self._run_labels[state.run_id] = f"run {state.run_id} (trial {trial.trial_name})"
        return state

    def _reopen(self, run: Any, trial: TrialInfo, metric_keys: KeyMap, param_keys: KeyMap) -> TrialRun:
        """Continue a run a previous process created (``Tuner.restore``): no second run per trial; the
        (metric, step) pairs it holds are read, and points there are not logged again (see ``held``)."""
        held = HeldSteps.read(self._client, run)
        if run.info.status != "RUNNING":
            self._client.update_run(run.info.run_id, status="RUNNING")
        state = TrialRun.from_run(run, trial.trial_name, metric_keys, param_keys)
        state.held = held or None
        holds = f"which already holds {held.summary()}; points at those steps are not logged again"
        self.log.info("trackbridge: mlflow: trial %s continues its run %s, %s", trial.trial_name, state.run_id, holds)
        return state

    def _base_tags(self) -> dict[str, str]:
        tags = dict(self._system_tags)
        for key, value in self.options.tags.items():
            tags[sanitize_key(key, self._limits.key_length)] = value
        return tags

    def _label(self, run_id: str) -> str:
        return self._run_labels.get(run_id, f"run {run_id}")

    # ------------------------------------------------------------------ config changes (PBT)
    @hookimpl
    def trackbridge_trial_config_update(self, trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
        # The new values as config/<key> from step + 1 on (see writer), and the exploit point itself at step.
        state = self._ensure_run(trial)
        state.held = None  # the trial continues from another checkpoint: its steps go back and are new points
        self._writer.apply_config(state, changes, step, log_params=not self.options.log_params_on_trial_end)
        self._add_points(state, {logged.EXPLOIT_METRIC: 1}, step or 0, time.time())

    # ------------------------------------------------------------------ results -> metrics
    @hookimpl
    def trackbridge_trial_result(
        self, trial: TrialInfo, step: int, metrics: Mapping[str, Any], timestamp: float
    ) -> None:
        # Replays the core's journal knows of never reach the plugin; in a reopened run, points the run already
        # holds are dropped (see held). A step that comes again after an exploit is a second point at that step.
        self._add_points(self._ensure_run(trial), metrics, step, timestamp)

    @hookimpl
    def trackbridge_trial_log(
        self, trial: TrialInfo, step: int, values: Mapping[str, Any], files: Sequence[LoggedFile], timestamp: float
    ) -> None:
        state = self._ensure_run(trial)
        self._add_points(state, values, step, timestamp)
        logged.log_files(self._client, state.run_id, files)

    def _add_points(self, state: TrialRun, values: Mapping[str, Any], step: int, timestamp: float) -> None:
        """The numbers among ``values`` into the buffer, as points at ``step``; written at the next flush."""
        assert self._writer is not None and self._buffer is not None  # the run exists, so setup has run
        points = logged.metric_points(values, state.metric_keys, step, timestamp, self._writer.metric_cls, self.warn)
        if state.held is not None:  # a reopened run (never the exploit point: config_update clears held first)
            kept = state.held.new_points(points)
            self.held_skipped += len(points) - len(kept)
            points = kept
        if points:
            self._buffer.add(state.run_id, points)

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
        sub = str(checkpoint.step) if checkpoint.step is not None else os.path.basename(checkpoint.path.rstrip("/"))
        with checkpoint.local_copy() as directory:  # raises CheckpointGone when Tune already deleted it
            self._client.log_artifacts(state.run_id, directory, artifact_path=f"checkpoints/{sub}")

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
            self._writer.apply_config(state, trial.config, None, log_params=True)
        self._terminate(state, status, error)
        if flush_error is not None:
            raise flush_error

    def _terminate(self, state: TrialRun, status: TrialStatus, error: str | None) -> None:
        if status is TrialStatus.UNFINISHED:
            self._unfinished += 1
        self._writer.end_run(state, status, error)
