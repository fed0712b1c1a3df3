"""The ``wandb`` plugin: one W&B run per Tune trial.

All W&B calls happen in these hooks, on the plugin's own worker thread (never Tune's). Several runs are
open at once in the driver process (``reinit="create_new"``), one per live trial, each addressed through
its own ``Run`` object, never through the global ``wandb.run``.

Mapping (see docs/wandb.md for the full table):

- trial start   -> ``wandb.init(id=trial_id, name=trial_name, group=experiment, config=trial config,
                   resume="allow", reinit="create_new")`` + ``define_metric`` with ``training_iteration``
                   as every metric's x-axis
- result        -> ``run.log({"training_iteration": step, **metrics}, step=step, commit=True)``
- checkpoint    -> ``run.log_artifact(Artifact(trial_name, type="model"), aliases=["latest", "step_N"])``
- complete      -> ``run.finish(exit_code=0 | 1 | 2)`` with ``tune/status`` (and ``tune/error``) in the summary
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trackbridge import CheckpointInfo, ExperimentInfo, TrackerPlugin, TrialInfo, TrialStatus, hookimpl
from trackbridge_wandb import convert, trial_config
from trackbridge_wandb.options import ONLINE_MODES, WandbOptions, effective_mode, resolve_api_key

#: Summary keys telling how the trial ended (W&B's run state only knows finished/failed).
SUMMARY_STATUS = "tune/status"
SUMMARY_ERROR = "tune/error"
#: ``run.finish`` exit codes per Tune outcome. W&B shows any non-zero code as "failed"; 2 (not 1) lets
#: a query tell "the experiment stopped while the trial was still running" apart from "the trial raised".
EXIT_CODES: Mapping[TrialStatus, int] = {
    TrialStatus.COMPLETED: 0,
    TrialStatus.FAILED: 1,
    TrialStatus.UNFINISHED: 2,
}


@dataclass
class _TrialRun:
    """One open W&B run and what the plugin must remember about it."""

    run: Any
    trial: TrialInfo
    #: The highest step logged to the run; lower or equal steps are never logged again.
    last_step: int | None


class WandbPlugin(TrackerPlugin[WandbOptions], name="wandb", requires=("wandb",)):
    """Logs every Tune trial as one Weights & Biases run.

    Options (all optional, declared in ``WandbOptions``): the ``wandb.init`` keywords ``project``, ``entity``,
    ``group``, ``tags``, ``notes``, ``job_type``, ``mode``, ``dir``, ... (passed to every run), ``settings``
    (a dict of ``wandb.Settings`` fields), ``init_kwargs`` (any other ``wandb.init`` keyword), ``api_key`` /
    ``api_key_file`` (else ``WANDB_API_KEY`` or ``wandb login``), ``upload_checkpoints`` (False),
    ``log_config`` (False), ``text`` ("history"). See docs/wandb.md.
    """

    def reset_state(self) -> None:
        # Never pickled (the base pickles only the options without the API key): a restored experiment finds
        # the key again in api_key_file or WANDB_API_KEY and reopens its runs with resume="allow".
        super().reset_state()
        self._wandb: Any = None
        self._runs: dict[str, _TrialRun] = {}
        #: Trials whose wandb.init failed, with the error: their results fail fast instead of each retrying
        #: wandb.init (which online can wait up to init_timeout); the next trial start tries again.
        self._failed_open: dict[str, str] = {}
        self._experiment: ExperimentInfo | None = None
        self._api_key: str | None = None

    # ------------------------------------------------------------------ hints for tools
    @classmethod
    def offline_options(cls, directory: str) -> dict[str, Any]:
        """Offline runs under ``directory``, in project ``trackbridge-demo``; ``WANDB_MODE`` and
        ``WANDB_PROJECT``, when set, are the user's choice and win."""
        options: dict[str, Any] = {"mode": "offline", "dir": directory, "project": "trackbridge-demo"}
        if os.environ.get("WANDB_MODE"):
            del options["mode"]
        if os.environ.get("WANDB_PROJECT"):
            del options["project"]
        return options

    def view_command(self, experiment: ExperimentInfo | None) -> str | None:
        """``wandb sync <dir>/wandb/offline-run-*`` for offline runs (the command that uploads them; ``dir``
        is the dir option, else ``WANDB_DIR``, else the current directory); None for online runs."""
        init = self.options.init
        if effective_mode(init, self.options.settings or {}) != "offline":
            return None
        directory = init.get("dir") or os.environ.get("WANDB_DIR") or os.getcwd()
        return f"wandb sync {shlex.quote(os.path.join(directory, 'wandb'))}/offline-run-*"

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def trackbridge_setup(self) -> None:
        """Import wandb and start its service here, so both overlap with Tune starting its trials."""
        try:
            import wandb
        except ImportError as exc:  # pragma: no cover - guarded by `requires`
            raise ImportError('the wandb plugin needs wandb: pip install "trackbridge[wandb]"') from exc
        self._wandb = wandb
        wandb.setup()
        directory = self.options.init.get("dir")
        if directory:
            os.makedirs(directory, exist_ok=True)

    @hookimpl
    def trackbridge_experiment_start(self, experiment: ExperimentInfo) -> None:
        self._experiment = experiment

    @hookimpl
    def trackbridge_trial_start(self, trial: TrialInfo, resumed: bool, last_step: int | None) -> None:
        state = self._runs.get(trial.trial_id)
        if state is not None:
            # Paused and resumed by a scheduler, or retried by Tune: the run is still open; continue it.
            state.trial = trial
            if last_step is not None and (state.last_step is None or last_step > state.last_step):
                state.last_step = last_step
            return
        self._failed_open.pop(trial.trial_id, None)
        try:
            self._runs[trial.trial_id] = self._open(trial, last_step)
        except Exception as exc:
            self._failed_open[trial.trial_id] = f"{type(exc).__name__}: {exc}"
            raise

    @hookimpl
    def trackbridge_trial_config_update(self, trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
        if not self.options.log_config:
            return
        state = self._state(trial)
        update = {k: v for k, v in changes.items() if not trial_config.is_wandb_key(trial, k)}
        if update:
            state.run.config.update(update, allow_val_change=True)

    @hookimpl
    def trackbridge_trial_result(self, trial: TrialInfo, step: int, metrics: Mapping[str, Any]) -> None:
        state = self._state(trial)
        if state.last_step is not None and step <= state.last_step:
            # W&B already has this step (a resumed online run): logging it would only earn a warning.
            self.warn(
                f"replay:{trial.trial_id}",
                f"trial {trial.trial_id}: steps up to {state.last_step} are already in its W&B run; not logged again",
            )
            return
        row, summary = convert.history_row(
            step, metrics, text_mode=self.options.text, wandb=self._wandb, warn=self.warn
        )
        # step= makes W&B's own step equal Tune's training_iteration: the default x-axis and the declared
        # one agree, W&B itself refuses a step twice, and the runs a restore writes offline hold disjoint
        # steps. commit=True writes the row now instead of when the next step arrives.
        state.run.log(row, step=step, commit=True)
        if summary:
            state.run.summary.update(summary)
        state.last_step = step

    @hookimpl
    def trackbridge_trial_checkpoint(self, trial: TrialInfo, checkpoint: CheckpointInfo) -> None:
        if not self.options.upload_checkpoints:
            return
        state = self._state(trial)
        # A remote checkpoint is downloaded to a temporary directory, removed after the block; a deleted one
        # raises CheckpointGone (a delivery failure, never a silent skip).
        with checkpoint.local_copy() as directory:
            metadata = convert.json_safe(checkpoint.metrics)
            if checkpoint.step is not None:
                metadata[convert.STEP_METRIC] = checkpoint.step
            metadata["trial_id"] = trial.trial_id
            artifact = self._wandb.Artifact(
                name=convert.artifact_name(trial.trial_name), type="model", metadata=metadata
            )
            # add_dir copies the files into W&B's staging area now (policy "mutable"), so Tune may delete
            # the checkpoint afterwards; the upload itself runs in W&B's service, not on this thread.
            artifact.add_dir(directory)
            aliases = ["latest"]
            if checkpoint.step is not None:
                aliases.append(f"step_{checkpoint.step}")
            state.run.log_artifact(artifact, aliases=aliases)

    @hookimpl
    def trackbridge_trial_complete(self, trial: TrialInfo, status: TrialStatus, error: str | None) -> None:
        state = self._runs.pop(trial.trial_id, None)
        failed = self._failed_open.pop(trial.trial_id, None)
        if state is None:
            if failed is not None:
                raise RuntimeError(f"trial {trial.trial_id} has no W&B run: wandb.init failed ({failed})")
            # No start was delivered (defensive): open the run now so its end is still recorded.
            state = self._open(trial, None)
        self._finish(state, status, error)

    @hookimpl
    def trackbridge_experiment_end(self, experiment: ExperimentInfo) -> None:
        # The core has already completed every open trial as UNFINISHED; this only guards against a run
        # left open by a failed hook. wandb.teardown() is deliberately not called: the W&B service is
        # shared by everything in this process (the user's own runs too) and stops when the process exits.
        first_error: BaseException | None = None
        for trial_id in list(self._runs):
            state = self._runs.pop(trial_id)
            try:
                self._finish(state, TrialStatus.UNFINISHED, None)
            except Exception as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    # ------------------------------------------------------------------ helpers
    def _state(self, trial: TrialInfo) -> _TrialRun:
        state = self._runs.get(trial.trial_id)
        if state is None:
            failed = self._failed_open.get(trial.trial_id)
            if failed is not None:
                raise RuntimeError(f"trial {trial.trial_id} has no W&B run: wandb.init failed ({failed})")
            # No start was delivered (defensive): open the run now.
            state = self._runs[trial.trial_id] = self._open(trial, None)
        return state

    def _open(self, trial: TrialInfo, last_step: int | None) -> _TrialRun:
        wandb = self._wandb
        if wandb is None:  # driven without trackbridge_setup (defensive)
            self.trackbridge_setup()
            wandb = self._wandb
        experiment = trial.experiment_name or (self._experiment.name if self._experiment else "tune")
        kwargs, settings = trial_config.init_arguments(trial, self.options, experiment, self.warn)
        if kwargs.get("dir"):
            os.makedirs(kwargs["dir"], exist_ok=True)
        if effective_mode(kwargs, settings) in ONLINE_MODES:
            # Only an online run needs the key, and it goes into this run's settings, never into
            # wandb.login() (which would write ~/.netrc) nor into the config.
            if self._api_key is None:
                self._api_key = resolve_api_key(self.options)
            if self._api_key:
                settings["api_key"] = self._api_key
        run = wandb.init(
            config=trial_config.run_config(trial),
            reinit="create_new",
            resume="allow",
            settings=wandb.Settings(**settings),
            **kwargs,
        )
        run.define_metric(convert.STEP_METRIC)
        run.define_metric("*", step_metric=convert.STEP_METRIC)
        # What the run already holds: the core's last step, or (online resume) W&B's own last step.
        known = last_step
        starting = getattr(run, "starting_step", 0) or 0
        if starting > 0 and (known is None or starting - 1 > known):
            known = starting - 1
        return _TrialRun(run=run, trial=trial, last_step=known)

    def _finish(self, state: _TrialRun, status: TrialStatus, error: str | None) -> None:
        summary: dict[str, Any] = {SUMMARY_STATUS: status.value}
        if error:
            summary[SUMMARY_ERROR] = error
        try:
            state.run.summary.update(summary)
        finally:
            state.run.finish(exit_code=EXIT_CODES[status])
