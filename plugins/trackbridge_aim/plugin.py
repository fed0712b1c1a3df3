"""TrackBridge's Aim plugin: one Aim run per Tune trial (the mapping table is in docs/aim.md).

A trial's run: ``run.name`` = the trial's name, ``run["hparams"]`` = its config, ``run["trial_id"]`` (how it is
found again after ``Tuner.restore``), ``run["status"]`` RUNNING then FINISHED / FAILED (+ ``run["error"]``) /
KILLED. Every value is tracked at its step (results: ``training_iteration``; in-trial values: their own step, in
the context ``{"source": "trial_log"}``). An Aim sequence holds one value per step, so after a PBT branch that
goes back the values go to the context ``{"branch": n}`` instead of overwriting the earlier branch's. Runs of a
local repo are indexed when they start and end, so ``aim.Repo`` readers and ``aim up`` see them at once.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
from trackbridge_aim.options import AimOptions, is_remote_repo
from trackbridge_aim.values import SequenceKinds, aim_values, logged_file_name, split_result

#: The words the MLflow plugin uses for a run's end, kept in ``run["status"]``.
RUNNING = "RUNNING"
STATUS_WORDS = {TrialStatus.COMPLETED: "FINISHED", TrialStatus.FAILED: "FAILED", TrialStatus.UNFINISHED: "KILLED"}
#: The context of values logged inside a trial (``trackbridge.log``): their steps are an axis of their own.
TRIAL_LOG_CONTEXT = {"source": "trial_log"}
_MAX_ERROR_CHARS = 4000


@dataclass
class _TrialRun:
    """The Aim run of one trial."""

    run_hash: str
    run: Any = None  # aim.Run while the trial runs; None once closed
    #: Highest result step the run holds (all contexts), so a branch that goes back moves to a new context.
    max_step: int = 0
    branch: int = 0
    #: ``max_step``/``branch`` changed since they were last saved in the run (``_save_progress``).
    unsaved: bool = False
    kinds: SequenceKinds = field(default_factory=SequenceKinds)


class AimPlugin(TrackerPlugin[AimOptions], name="aim", requires=("aim",)):
    """Track each Tune trial as an Aim run; look at them with ``aim up --repo <repo>``."""

    checkpoint_option = "save_checkpoints"

    def reset_state(self) -> None:
        super().reset_state()
        # A local repo's writes are in RocksDB's write-ahead log as soon as ``track`` returns. An aim:// repo's
        # travel on Aim's client queue (as do all with AIM_ENABLE_TRACKING_THREAD), which has no public flush:
        # counted as stored only once a run is closed (after a SIGKILL they come again; Aim keeps one value per
        # step, so nothing doubles). Per instance: the transport reads it from the plugin object.
        self.durable_after_flush = not (
            is_remote_repo(self.options.repo) or os.environ.get("AIM_ENABLE_TRACKING_THREAD")
        )
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

    def stored_summary(self, experiment: ExperimentInfo) -> StoredSummary | None:
        """The experiment's runs in a local repo (the ``repo`` option, else where ``trackbridge_experiment_start``
        puts them), read with ``aim.Repo``; None for an ``aim://`` server."""
        repo = self.options.repo or self._ready().default_repo(experiment.path, experiment.filesystem is None)
        if is_remote_repo(repo):
            return None
        from trackbridge_aim.stored import summarize

        return summarize(repo, self.options.experiment_name or experiment.name)

    def tracker_destination(self) -> str | None:
        """The ``repo`` option (an absolute directory or an ``aim://`` address); None: the experiment's folder."""
        return mask_uri(self.options.repo) if self.options.repo else None

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

    def _open(self, trial: TrialInfo, run_hash: str | None) -> _TrialRun:
        """Create the trial's run, or reopen ``run_hash``. The state is registered as soon as the run exists, so
        a later failure (indexing, a write) never leaves an open run behind that the next event would not find."""
        if self._repo is None:  # a hook before the experiment start (driven by hand): Aim's defaults
            self.trackbridge_experiment_start(ExperimentInfo(name=trial.experiment_name or "trackbridge"))
        keywords: dict[str, Any] = {
            "system_tracking_interval": self.options.system_tracking_interval,
            "capture_terminal_logs": self.options.capture_terminal_logs,
            "log_system_params": self.options.log_system_params,
        }
        if run_hash is not None and self._experiment is not None and self._experiment.resumed:
            # The trial's run, reopened after Tuner.restore: a lock left by the killed driver is taken over
            # (Aim otherwise waits for a lock whose owner it cannot see is gone, e.g. on another machine).
            keywords["force_resume"] = True
        run = self._ready().open_run(str(self._repo), self._experiment_name, run_hash, keywords)
        state = self._trials[trial.trial_id] = _TrialRun(run_hash=run.hash, run=run)
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
        else:
            saved = run.get("trackbridge") or {}
            state.branch = int(saved.get("branch", 0))
            state.max_step = int(saved.get("max_step", 0))
            if run.get("error") is not None:  # the trial runs again: an earlier attempt's error no longer holds
                del run["error"]
        run["status"] = RUNNING
        self._index(run.hash)  # visible to readers (and found again after a restore) while it runs
        return state

    def _index(self, run_hash: str) -> None:
        """Index the run (local repos, ``index_runs``); best effort: while another process holds the index (a
        running ``aim up``, another driver), the run is left to that or the next ``aim up``, with one warning."""
        if self.options.index_runs and self._local_repo():
            try:
                self._repo_module.index_run(str(self._repo), run_hash)
            except Exception as exc:
                self.warn("index", f"could not index {self._repo} ({exc!r}); `aim up` will show the run")

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
        state.unsaved = False

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def trackbridge_trial_start(self, trial: TrialInfo, resumed: bool, last_step: int | None) -> None:
        state = self._trials.get(trial.trial_id)
        if state is not None and state.run is not None:
            return  # paused and resumed, or retried, in this process: the run goes on
        run_hash = state.run_hash if state is not None else self._known_runs.get(trial.trial_id)
        if run_hash is None and resumed and self._experiment is not None and self._experiment.resumed:
            where = "the index of " if self._local_repo() else "the (server-side) index of "
            self.warn(
                "not-found",
                f"no run of trial {trial.trial_name} in {where}{mask_uri(self._repo)}; starting a new one "
                "(see 'Restores' in docs/aim.md)",
            )
        state = self._open(trial, run_hash)
        # The run holds up to the step TrackBridge says it holds, even if its saved progress is older (a SIGKILL
        # before the last save): a branch below it must go to a new context.
        state.max_step = max(state.max_step, last_step or 0)

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
        values, result_context, epoch = split_result(metrics)
        if self.options.metrics is not None:
            values = {k: v for k, v in values.items() if k in self.options.metrics}
        self._track(state, values, step, epoch, self._context(state, result_context))
        if step > state.max_step:
            state.max_step, state.unsaved = step, True

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
            state.run.log_artifact(file.path, name=logged_file_name(file.name), block=True)

    def _track(
        self, state: _TrialRun, values: Mapping[str, Any], step: int, epoch: int | None, context: dict[str, Any]
    ) -> None:
        """One ``run.track`` of every value Aim can store (``values.aim_values``). Should Aim refuse one (a kind
        a reopened run's sequence already has), the values are tracked one by one, and only the refused skipped."""
        tracked = aim_values(self._aim, values, context, state.kinds, self.warn)
        if not tracked:
            return
        try:
            state.run.track(tracked, step=step, epoch=epoch, context=context)
        except Exception:
            for key, value in tracked.items():
                try:
                    state.run.track(value, name=key, step=step, epoch=epoch, context=context)
                except Exception as exc:
                    self.warn(f"refused:{key}", f"Aim refused {key!r} ({exc!r}); skipped")

    @hookimpl
    def trackbridge_trial_checkpoint(self, trial: TrialInfo, checkpoint: CheckpointInfo) -> None:
        if not self.options.save_checkpoints:
            return
        state = self._run_for(trial)
        step = checkpoint.step if checkpoint.step is not None else os.path.basename(checkpoint.path.rstrip("/"))
        # After a branch that went back, a step's name may be taken by the earlier branch's checkpoint.
        name = f"checkpoints/branch_{state.branch}/{step}" if state.branch else f"checkpoints/{step}"
        with checkpoint.local_copy() as directory:
            state.run.log_artifacts(directory, name=name, block=True)

    @hookimpl
    def trackbridge_flush(self) -> None:
        """Save each open run's progress (branch, highest step) when it changed, for a run reopened after a
        restore. The values themselves are on disk already (local) or on Aim's client queue (``aim://``)."""
        for state in self._trials.values():
            if state.run is not None and state.unsaved:
                self._save_progress(state)

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
