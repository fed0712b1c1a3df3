"""The Comet plugin: one Comet experiment per Tune trial.

Mapping (docs/comet.md has the user's version):

- experiment start -> offline: the archive directory created and checked, where it is logged once
- trial start      -> ``comet_ml.start(mode="get_or_create", experiment_key=<the trial's key>)`` (``experiments``):
                      name = trial name, tags, the config as parameters, trial id/name/Tune experiment as
                      "others"; a trial whose experiment is open continues it (a pause, a PBT exploit, a Tune
                      retry: the trial stays open); one started again after it ended (``Tuner.restore`` with
                      ``resume_errored=True``) or in a new process (any ``Tuner.restore``) reopens the same key
- result           -> one ``log_metrics(numbers, step=training_iteration)``
- in-trial log     -> numbers: ``log_metrics(numbers, step=<the call's own step>)``; files: ``log_asset`` under
                      ``logged/``
- config update    -> changed parameters logged again, and the metric ``trackbridge/exploit`` = 1 at the step
- checkpoint       -> ``log_model("checkpoint_<step>", <checkpoint dir>)`` (``save_checkpoints=True``);
                      ``checkpoint_<step>_branch<n>`` after the n-th PBT branch that went back to an earlier step
- flush            -> online: ``flush()`` of every open experiment (then durable: ``modes``); offline: nothing
- complete         -> others ``status`` (FINISHED / FAILED / KILLED) and ``error``; ``end()`` writes an offline
                      archive, renamed ``<key>-<NNN>.zip`` (``archives``)

Every hook runs on the plugin's own worker thread; comet_ml's experiments run threads of their own. Every hook
raises errors without an API key in them (``experiments.masks_secrets``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from trackbridge_comet import archives, experiments, modes
from trackbridge_comet import values as convert
from trackbridge_comet.experiments import masks_secrets
from trackbridge_comet.options import CometOptions
from trackbridge_comet.quiet import mask_keys, quiet_this_thread


@dataclass
class _Trial:
    """One trial's Comet experiment, as far as this process knows it."""

    key: str
    name: str
    experiment: Any = None  # the open comet_ml experiment; None once ended
    #: Opened before (in this process, or by an earlier process: a resumed start): the experiment may hold the
    #: ``error`` other of an earlier failed attempt, which a successful end clears.
    reopened: bool = False
    #: Highest result step of the current branch, and the PBT branches (in this process) that went back below it:
    #: the checkpoint names of a branch that went back carry its number (``_branch<n>``), so none is reused.
    max_step: int = 0
    branch: int = 0


class CometPlugin(TrackerPlugin[CometOptions], name="comet", requires=("comet_ml",)):
    """Log every Tune trial as a Comet experiment; offline archives unless an API key is configured.

    Options (all keyword, all optional; declared in ``CometOptions``, see docs/comet.md): ``mode``, ``api_key``
    (secret: never pickled or logged), ``workspace``, ``project_name``, ``tags``, ``offline_directory``,
    ``save_checkpoints`` (False), ``log_environment`` (False), ``experiment_config`` (dict), ``quiet`` (True).
    """

    checkpoint_option = "save_checkpoints"

    def reset_state(self) -> None:
        # Never pickled (the base pickles only the options without the key): no experiments, no directories.
        super().reset_state()
        self._mode: str | None = modes.early_mode(self.options.mode, self.options.api_key)
        # Per instance: the transport reads it from the plugin object when the run starts (see ``modes``).
        self.durable_after_flush = self._mode == "online"
        #: Set when a restored experiment ran online and no key is found now: every hook raises it.
        self._refusal: RuntimeError | None = None
        self._experiment: ExperimentInfo | None = None
        self._directory: str | None = None
        self._remote_directory: str | None = None
        self._trials: dict[str, _Trial] = {}
        #: Paths of the archives written (renamed) in this process, in order.
        self.archives: list[str] = []

    # ------------------------------------------------------------------ hints for tools
    @classmethod
    def offline_options(cls, directory: str) -> dict[str, Any]:
        """Offline archives in ``directory/comet``."""
        return {"mode": "offline", "offline_directory": os.path.join(directory, "comet")}

    def mode(self) -> str:
        """'online' or 'offline': the ``mode`` option, else online iff an API key is configured (the ``api_key``
        option, ``$COMET_API_KEY`` or Comet's config file written by ``comet login``)."""
        if self._mode is None:
            self._mode = "online" if experiments.configured_api_key() else "offline"
        return self._mode

    def api_keys(self) -> list[str]:
        """The API keys in play (masked in every error and in Comet's log lines)."""
        return experiments.keys_in_play(self.options.api_key)

    def view_command(self, experiment: ExperimentInfo | None) -> str | None:
        """``comet upload <archive directory>/*.zip`` for offline experiments; None online."""
        if self.mode() != "offline":
            return None
        directory = self._directory or archives.resolve_directory(self.options.offline_directory, experiment)[0]
        return archives.upload_command(directory)

    def stored_summary(self, experiment: ExperimentInfo) -> StoredSummary | None:
        """Offline: the experiment's archives (their local directory), read back; None online."""
        if self.mode() != "offline":
            return None
        from trackbridge_comet.stored import summarize

        directory = self._directory or archives.resolve_directory(self.options.offline_directory, experiment)[0]
        return summarize(directory, experiment.name)

    def tracker_destination(self) -> str | None:
        """Mode, workspace and project, and offline the archive directory (the default one: relative to the
        experiment, so journals of the same experiment agree wherever it was moved)."""
        mode = self.mode()
        where = self.options.offline_directory or f"<experiment>/{archives.SUBDIRECTORY}"
        if mode == "online":
            where = mask_uri(os.environ.get("COMET_URL_OVERRIDE") or "https://www.comet.com") or ""
        return f"comet|{mode}|{self.options.workspace or ''}|{self.options.project_name or ''}|{where}"

    # ------------------------------------------------------------------ setup and experiment
    @hookimpl
    @masks_secrets
    def trackbridge_setup(self) -> None:
        """Import comet_ml (~1.5 s) while Tune starts its trials, and decide the mode."""
        experiments.import_comet()
        if self.options.quiet:
            quiet_this_thread()
        mask_keys(self.api_keys())
        self.mode()

    @hookimpl
    @masks_secrets
    def trackbridge_experiment_start(self, experiment: ExperimentInfo) -> None:
        # Per-experiment state starts empty, also when one plugin object serves a second fit().
        self._experiment = experiment
        self._directory = self._remote_directory = self._refusal = None
        self._trials = {}
        if self.options.mode is None:  # decided by the plugin, not the options: kept across Tuner.restore
            self._refusal = modes.check_restored(experiment, self.mode(), self.warn)
            if self._refusal is not None:
                raise self._refusal
        if self.mode() == "offline":
            self._offline_directory()

    def _offline_directory(self) -> str:
        """The checked archive directory of this experiment; raises (every time it is asked) while not writable."""
        if self._directory is None:
            where = archives.prepare(self.options.offline_directory, self._experiment, self.log)
            self._directory, self._remote_directory = where
        return self._directory

    @hookimpl
    @masks_secrets
    def trackbridge_experiment_end(self, experiment: ExperimentInfo) -> None:
        errors = []
        for state in self._trials.values():
            if state.experiment is not None:  # no trial_complete came (should not happen): nothing stays open
                try:
                    self._end(state, TrialStatus.UNFINISHED, None)
                except Exception as exc:  # end the others before reporting
                    errors.append(f"{state.name}: {type(exc).__name__}: {exc}")
        if errors:
            raise RuntimeError("; ".join(errors))

    # ------------------------------------------------------------------ trials
    @hookimpl
    @masks_secrets
    def trackbridge_trial_start(self, trial: TrialInfo, resumed: bool, last_step: int | None) -> None:
        state = self._trials.get(trial.trial_id)
        if state is not None and state.experiment is not None:
            return  # paused and resumed, a PBT exploit, or retried by Tune: the trial stayed open, so does this
        restored = bool(self._experiment and self._experiment.resumed)
        state = self._open(trial, reopened=resumed or restored or state is not None)
        state.max_step = max(state.max_step, last_step or 0)  # a branch back below it is a new branch

    def _ensure(self, trial: TrialInfo) -> _Trial:
        """The trial's state with its experiment open; opened now if its start failed or was never seen."""
        state = self._trials.get(trial.trial_id)
        if state is None or state.experiment is None:
            state = self._open(trial, reopened=state is not None or bool(self._experiment and self._experiment.resumed))
        return state

    def _open(self, trial: TrialInfo, *, reopened: bool) -> _Trial:
        if self._refusal is not None:
            raise self._refusal
        experiments.import_comet()
        if self.options.quiet:
            quiet_this_thread()
        experiment_name = trial.experiment_name or (self._experiment.name if self._experiment else "")
        online = self.mode() == "online"
        directory = self._offline_directory() if not online else self.options.offline_directory
        state = self._trials.get(trial.trial_id) or _Trial(
            experiments.experiment_key(experiment_name, trial.trial_id), trial.trial_name
        )
        tags = [*(self.options.tags or []), *([experiment_name] if experiment_name else [])]
        state.experiment = experiments.open_experiment(
            online=online,
            api_key=self.options.api_key,
            workspace=self.options.workspace,
            project_name=self.options.project_name,
            key=state.key,
            name=trial.trial_name,
            tags=list(dict.fromkeys(tags)),
            offline_directory=directory,
            settings=experiments.config_kwargs(self.options.log_environment, self.options.experiment_config or {}),
        )
        state.reopened = state.reopened or reopened
        self._trials[trial.trial_id] = state
        experiments.describe(state.experiment, trial, experiment_name, self.warn)
        return state

    # ------------------------------------------------------------------ config changes (PBT)
    @hookimpl
    @masks_secrets
    def trackbridge_trial_config_update(self, trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
        """The changed values as parameters again (Comet keeps the latest), at the step the trial continues from,
        and the exploit point there."""
        state = self._ensure(trial)
        experiment, at = state.experiment, step or 0
        if at < state.max_step:  # a branch going back: its checkpoints get names of their own
            state.branch += 1
            state.max_step = at
        params = convert.parameters(changes, self.warn)
        if params:
            experiment.log_parameters(params, step=at)
        experiment.log_metrics({convert.EXPLOIT_METRIC: 1.0}, step=at)

    # ------------------------------------------------------------------ results and in-trial values
    @hookimpl
    @masks_secrets
    def trackbridge_trial_result(
        self, trial: TrialInfo, step: int, metrics: Mapping[str, Any], timestamp: float
    ) -> None:
        state = self._ensure(trial)
        state.max_step = max(state.max_step, step)
        numbers = convert.metric_numbers(metrics, self.warn)
        if numbers:
            state.experiment.log_metrics(numbers, step=step)

    @hookimpl
    @masks_secrets
    def trackbridge_trial_log(
        self, trial: TrialInfo, step: int, values: Mapping[str, Any], files: Sequence[LoggedFile], timestamp: float
    ) -> None:
        experiment = self._ensure(trial).experiment
        numbers = convert.metric_numbers(values, self.warn)
        if numbers:
            experiment.log_metrics(numbers, step=step)
        for file in files:
            for path, name in convert.files_of(file):
                if experiment.log_asset(path, file_name=name, step=step) is None:
                    raise RuntimeError(f"trackbridge: comet: Comet did not take the file {path} as asset {name!r}")

    # ------------------------------------------------------------------ checkpoints -> models
    @hookimpl
    @masks_secrets
    def trackbridge_trial_checkpoint(self, trial: TrialInfo, checkpoint: CheckpointInfo) -> None:
        if not self.options.save_checkpoints:
            return
        state = self._ensure(trial)
        experiment, name = state.experiment, convert.checkpoint_name(checkpoint, state.branch)
        with checkpoint.local_copy() as directory:  # CheckpointGone propagates: counted, never silently skipped
            if not any(files for _root, _dirs, files in os.walk(directory)):
                self.warn("empty-checkpoint", f"checkpoint {checkpoint.path} has no files; no model logged")
                return
            metadata = {"step": checkpoint.step, "trial_id": trial.trial_id}
            if experiment.log_model(name, directory, prepend_folder_name=False, metadata=metadata) is None:
                raise RuntimeError(
                    f"trackbridge: comet: Comet did not take checkpoint {checkpoint.path} as model {name}"
                )

    # ------------------------------------------------------------------ flush and the end of a trial
    @hookimpl
    @masks_secrets
    def trackbridge_flush(self) -> None:
        """When durable (online, the key from the options or the environment: ``modes``), wait until Comet's server
        has everything logged so far. Else nothing: offline, data is durable once ``end()`` wrote the archive."""
        if not self.durable_after_flush:
            return
        failed = [
            s.name
            for s in self._trials.values()
            if s.experiment is not None and not getattr(s.experiment, "disabled", False) and not s.experiment.flush()
        ]
        if failed:
            raise RuntimeError(f"trackbridge: comet: Comet did not confirm everything logged for {', '.join(failed)}")

    @hookimpl
    @masks_secrets
    def trackbridge_trial_complete(self, trial: TrialInfo, status: TrialStatus, error: str | None) -> None:
        self._end(self._ensure(trial), status, error)

    def _end(self, state: _Trial, status: TrialStatus, error: str | None) -> None:
        """Log how the trial ended, ``end()`` the experiment (offline: its archive is written now), settle it."""
        experiment, state.experiment = state.experiment, None
        experiments.finish(experiment, status, error, state.reopened)
        state.reopened = True
        if getattr(experiment, "disabled", False):  # experiment_config={"disabled": True}: Comet wrote nothing
            return
        if self.mode() == "offline" and self._directory is not None:
            self.archives.append(
                archives.keep(experiment, state.key, self._directory, self._experiment, self._remote_directory)
            )
