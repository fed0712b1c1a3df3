"""TrackBridge's Aim plugin: one Aim run per Tune trial.

Mapping (docs/aim.md has the user's version):

- experiment start -> the repo (the experiment's folder, ``repo=``, or an ``aim://`` server); after
  ``Tuner.restore``, the runs of the experiment's trials are looked up in it
- trial start      -> an ``aim.Run`` named after the trial, in the Aim experiment named after the Tune one, with
  ``run["hparams"]`` = the trial's config (nested) and ``run["trial_id"]``; a resumed trial reopens its run
- result           -> ``run.track`` of every value at ``step`` = ``training_iteration``: numbers as metrics,
  lists and arrays as ``aim.Distribution``, strings as ``aim.Text``; a result's ``context/<name>`` keys become
  its Aim context and ``epoch`` its epoch, as with Ray's ``AimLoggerCallback``
- config update    -> ``run["hparams"]`` updated and ``trackbridge/exploit`` = 1 at the step the trial continues
  from; when that step is below steps already stored (a PBT exploit), later values go to the context
  ``{"branch": n}``, because an Aim series holds one value per step and would otherwise overwrite them
- in-trial log     -> the values at the call's own step in the context ``{"source": "trial_log"}`` (a step axis
  of its own); files as artifacts ``logged/<name>``
- checkpoint       -> artifacts ``checkpoints/<step>/...`` (``save_checkpoints=True``)
- complete         -> ``run["status"]`` (RUNNING while the trial runs) = FINISHED / FAILED (+ ``run["error"]``) / KILLED, the run closed and
  indexed (so readers and ``aim up`` see it at once)
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trackbridge import (
    HISTOGRAM,
    SCALAR,
    TEXT,
    CheckpointInfo,
    ExperimentInfo,
    LoggedFile,
    TrackerPlugin,
    TrialInfo,
    TrialStatus,
    classify,
    hookimpl,
    mask_uri,
    to_float,
)
from trackbridge_aim.options import AimOptions, is_remote_repo

#: The words the MLflow plugin uses for a run's end, kept in ``run["status"]``.
RUNNING = "RUNNING"
STATUS_WORDS = {TrialStatus.COMPLETED: "FINISHED", TrialStatus.FAILED: "FAILED", TrialStatus.UNFINISHED: "KILLED"}
#: The context of values logged inside a trial (``trackbridge.log``): their steps are an axis of their own.
TRIAL_LOG_CONTEXT = {"source": "trial_log"}
_MAX_ERROR_CHARS = 4000
_RESULT_CONTEXT_PREFIX = "context/"


@dataclass
class _TrialRun:
    """The Aim run of one trial."""

    run_hash: str
    run: Any = None  # aim.Run while the trial runs; None once closed
    #: Highest step stored per context (results), so a branch that goes back can move to a new context.
    max_step: int = 0
    branch: int = 0
    #: (name, context) -> kind of its first value: an Aim series keeps one type.
    kinds: dict[tuple[str, tuple[tuple[str, Any], ...]], str] = field(default_factory=dict)


class AimPlugin(TrackerPlugin[AimOptions], name="aim", requires=("aim",)):
    """Track each Tune trial as an Aim run; look at them with ``aim up --repo <repo>``."""

    def reset_state(self) -> None:
        super().reset_state()
        # A local repo's writes are in RocksDB's write-ahead log as soon as ``track`` returns. An aim:// repo's
        # travel on Aim's client queue, which has no public flush: counted as stored only once a run is closed
        # (after a SIGKILL they come again, and Aim keeps one value per step, so nothing doubles).
        self.durable_after_flush = not is_remote_repo(self.options.repo)
        self._repo: str | None = None
        self._experiment: ExperimentInfo | None = None
        self._experiment_name = ""
        self._trials: dict[str, _TrialRun] = {}
        self._known_runs: dict[str, str] = {}
        self._aim: Any = None
        self._repo_module: Any = None

    # ------------------------------------------------------------------ hints for tools
    @classmethod
    def offline_options(cls, directory: str) -> dict[str, Any]:
        """A local repo in ``directory``."""
        return {"repo": directory}

    def view_command(self, experiment: ExperimentInfo | None) -> str | None:
        """``aim up --repo <repo>`` for a local repo; None for an ``aim://`` server (open its UI instead)."""
        repo = self._repo or self.options.repo
        if repo is None and experiment is not None and experiment.path and experiment.filesystem is None:
            repo = experiment.path
        if repo is None or is_remote_repo(repo):
            return None
        return f"aim up --repo {shlex.quote(repo)}"

    def tracker_destination(self) -> str | None:
        """The ``repo`` option (an absolute directory or an ``aim://`` address); None: the experiment's folder."""
        return mask_uri(self.options.repo) if self.options.repo else None

    @property
    def skipped(self) -> dict[str, int]:
        """Values skipped, by warning key (for tests and the curious)."""
        return dict(self.warn.counts)

    # ------------------------------------------------------------------ setup and experiment
    @hookimpl
    def trackbridge_setup(self) -> None:
        """Import Aim (~1.5 s) while Tune starts its trials."""
        import aim

        from trackbridge_aim import repo

        self._aim = aim
        self._repo_module = repo

    def _ready(self) -> Any:
        if self._repo_module is None:
            self.trackbridge_setup()
        return self._repo_module

    @hookimpl
    def trackbridge_experiment_start(self, experiment: ExperimentInfo) -> None:
        repo_module = self._ready()
        self._experiment = experiment
        self._experiment_name = self.options.experiment_name or experiment.name
        self._repo = self.options.repo or repo_module.default_repo(experiment.path, experiment.filesystem is None)
        self._known_runs = {}
        if experiment.resumed:
            try:
                self._known_runs = repo_module.find_trial_runs(self._repo, self._experiment_name)
            except Exception as exc:  # a trial then starts a new run, with a warning
                self.warn("lookup", f"could not read the runs already in {mask_uri(self._repo)}: {exc!r}")
        self.log.info(
            "trackbridge: aim: runs of experiment %r go to the repo %s", self._experiment_name, mask_uri(self._repo)
        )

    def _local_repo(self) -> bool:
        return self._repo is not None and not is_remote_repo(self._repo)

    def _artifacts_uri(self) -> str | None:
        if self.options.artifacts_uri:
            return self.options.artifacts_uri
        if self._local_repo():
            return "file://" + os.path.join(str(self._repo), "aim-artifacts")
        return None

    # ------------------------------------------------------------------ runs
    def _run_keywords(self) -> dict[str, Any]:
        return {
            "system_tracking_interval": self.options.system_tracking_interval,
            "capture_terminal_logs": self.options.capture_terminal_logs,
            "log_system_params": self.options.log_system_params,
            **dict(self.options.run_kwargs),
        }

    def _open(self, trial: TrialInfo, run_hash: str | None) -> _TrialRun:
        if self._repo is None:  # a hook before the experiment start (driven by hand): Aim's defaults
            self.trackbridge_experiment_start(ExperimentInfo(name=trial.experiment_name or "trackbridge"))
        repo = str(self._repo)
        run = self._ready().open_run(repo, self._experiment_name, run_hash, self._run_keywords())
        state = _TrialRun(run_hash=run.hash, run=run)
        if run_hash is None:
            run.name = trial.trial_name
            run[self._repo_module.TRIAL_ID_KEY] = trial.trial_id
            run["hparams"] = dict(trial.nested_config)
            run["trackbridge"] = {"experiment_tag": trial.experiment_tag, "trial_path": trial.path}
            for tag in self.options.tags or ():
                run.add_tag(tag)
            uri = self._artifacts_uri()
            if uri:
                run.set_artifacts_uri(uri)
            self._index(run.hash)  # visible to readers (and found again after a restore) while it runs
        else:
            saved = run.get("trackbridge") or {}
            state.branch = int(saved.get("branch", 0))
            state.max_step = int(saved.get("max_step", 0))
            if run.get("error") is not None:  # the trial runs again: an earlier attempt's error no longer holds
                del run["error"]
        run["status"] = RUNNING
        return state

    def _index(self, run_hash: str) -> None:
        if self.options.index_runs and self._local_repo():
            self._repo_module.index_run(str(self._repo), run_hash)

    def _run_for(self, trial: TrialInfo) -> _TrialRun:
        """The trial's open run; reopened if a hook arrives for a trial whose run is closed or never opened."""
        state = self._trials.get(trial.trial_id)
        if state is None or state.run is None:
            self.trackbridge_trial_start(trial, resumed=state is not None, last_step=None)
            state = self._trials[trial.trial_id]
        return state

    def _save_progress(self, state: _TrialRun) -> None:
        """What a reopened run needs to continue: its branch and its highest step."""
        saved = dict(state.run.get("trackbridge") or {})
        saved.update(branch=state.branch, max_step=state.max_step)
        state.run["trackbridge"] = saved

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def trackbridge_trial_start(self, trial: TrialInfo, resumed: bool, last_step: int | None) -> None:
        state = self._trials.get(trial.trial_id)
        if state is not None and state.run is not None:
            return  # paused and resumed, or retried, in this process: the run goes on
        run_hash = state.run_hash if state is not None else self._known_runs.get(trial.trial_id)
        if run_hash is None and resumed and self._experiment is not None and self._experiment.resumed:
            self.warn("not-found", f"no run of trial {trial.trial_name} in {mask_uri(self._repo)}; starting a new one")
        self._trials[trial.trial_id] = self._open(trial, run_hash)

    @hookimpl
    def trackbridge_trial_config_update(self, trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
        state = self._run_for(trial)
        at = step or 0
        if at < state.max_step:  # a branch going back: a fresh context, so no stored point is overwritten
            state.branch += 1
            state.max_step = at
        state.run["hparams"] = dict(trial.nested_config)
        self._track(state, {"trackbridge/exploit": 1.0}, at, None, self._context(state, {}))
        self._save_progress(state)

    def _context(self, state: _TrialRun, extra: Mapping[str, Any]) -> dict[str, Any]:
        context = {**self.options.context, **extra}
        if state.branch:
            context["branch"] = state.branch
        return context

    @hookimpl
    def trackbridge_trial_result(self, trial: TrialInfo, step: int, metrics: Mapping[str, Any]) -> None:
        state = self._run_for(trial)
        values: dict[str, Any] = {}
        result_context: dict[str, Any] = {}
        epoch = None
        for key, value in metrics.items():
            if key.startswith(_RESULT_CONTEXT_PREFIX) and isinstance(value, (str, int, float, bool)):
                result_context[key[len(_RESULT_CONTEXT_PREFIX) :]] = value
            elif key == "epoch" and classify(value) == SCALAR:
                epoch = int(to_float(value))
            elif self.options.metrics is None or key in self.options.metrics:
                values[key] = value
        self._track(state, values, step, epoch, self._context(state, result_context))
        state.max_step = max(state.max_step, step)

    @hookimpl
    def trackbridge_trial_log(
        self, trial: TrialInfo, step: int, values: Mapping[str, Any], files: Sequence[LoggedFile]
    ) -> None:
        state = self._run_for(trial)
        self._track(state, values, step, None, self._context(state, TRIAL_LOG_CONTEXT))
        for file in files:
            if state.run.artifacts_uri is None:
                self.warn("files", f"no artifacts_uri for an aim:// repo; {file.name!r} of {trial.trial_name} skipped")
                continue
            state.run.log_artifact(file.path, name=f"logged/{file.name}", block=True)

    def _track(
        self, state: _TrialRun, values: Mapping[str, Any], step: int, epoch: int | None, context: dict[str, Any]
    ) -> None:
        """One ``run.track`` of every value Aim can store, each as the kind its series already has."""
        aim = self._aim
        context_key = tuple(sorted(context.items()))
        tracked: dict[str, Any] = {}
        for key, value in values.items():
            kind = classify(value)
            if kind == SCALAR:
                converted: Any = to_float(value)
            elif kind == HISTOGRAM:
                converted = aim.Distribution(samples=list(value) if isinstance(value, tuple) else value)
            elif kind == TEXT:
                converted = aim.Text(value)
            else:
                self.warn(f"skip:{key}", f"{key!r} is a {type(value).__name__}, which Aim does not track; skipped")
                continue
            first = state.kinds.setdefault((key, context_key), kind)
            if first != kind:
                self.warn(f"kind:{key}", f"{key!r} was first tracked as a {first}, now a {kind}; Aim keeps one kind")
                continue
            tracked[key] = converted
        if tracked:
            state.run.track(tracked, step=step, epoch=epoch, context=context)

    @hookimpl
    def trackbridge_trial_checkpoint(self, trial: TrialInfo, checkpoint: CheckpointInfo) -> None:
        if not self.options.save_checkpoints:
            return
        state = self._run_for(trial)
        name = f"checkpoints/{checkpoint.step if checkpoint.step is not None else os.path.basename(checkpoint.path)}"
        with checkpoint.local_copy() as directory:
            state.run.log_artifacts(directory, name=name, block=True)

    @hookimpl
    def trackbridge_trial_complete(self, trial: TrialInfo, status: TrialStatus, error: str | None) -> None:
        state = self._run_for(trial)
        run = state.run
        run["status"] = STATUS_WORDS[status]
        if status is TrialStatus.FAILED and error:
            run["error"] = error[-_MAX_ERROR_CHARS:]
        self._save_progress(state)
        state.run = None
        run.close()
        self._index(state.run_hash)

    @hookimpl
    def trackbridge_experiment_end(self, experiment: ExperimentInfo) -> None:
        errors = []
        for trial_id, state in self._trials.items():
            if state.run is None:
                continue
            run, state.run = state.run, None
            try:
                run.close()
                self._index(state.run_hash)
            except Exception as exc:  # close the others before reporting
                errors.append(f"{trial_id}: {exc!r}")
        self._trials.clear()
        if errors:
            raise RuntimeError("closing Aim runs failed: " + "; ".join(errors))
