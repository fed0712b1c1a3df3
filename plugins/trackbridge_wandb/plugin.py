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

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Mapping

from trackbridge import hookimpl
from trackbridge.events import CheckpointInfo, ExperimentInfo, TrialInfo, TrialStatus
from trackbridge.values import REDACTED, WarnOnce

from trackbridge_wandb import convert
from trackbridge_wandb.options import (
    DEFAULT_SETTINGS,
    MANAGED_INIT_KEYWORDS,
    ONLINE_MODES,
    PASSTHROUGH_INIT_KEYWORDS,
    WandbOptions,
    effective_mode,
    parse_options,
    resolve_api_key,
)

logger = logging.getLogger("trackbridge.wandb")

#: The config key whose sub-dict overrides ``wandb.init`` keywords for one trial (as in Ray's integration).
CONFIG_KEY = "wandb"
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
#: Keys a trial's ``wandb`` config sub-dict may set (besides every pass-through ``wandb.init`` keyword).
TRIAL_OVERRIDES = PASSTHROUGH_INIT_KEYWORDS | {"id", "name", "settings"}


@dataclass
class _TrialRun:
    """One open W&B run and what the plugin must remember about it."""

    run: Any
    trial: TrialInfo
    #: The highest step logged to the run; lower or equal steps are never logged again.
    last_step: int | None


class WandbPlugin:
    """Logs every Tune trial as one Weights & Biases run.

    Options (all optional): the ``wandb.init`` keywords ``project``, ``entity``, ``group``, ``tags``,
    ``notes``, ``job_type``, ``mode``, ``dir``, ... (passed to every run), ``settings`` (a dict of
    ``wandb.Settings`` fields), ``init_kwargs`` (any other ``wandb.init`` keyword), ``api_key`` /
    ``api_key_file`` (else ``WANDB_API_KEY`` or ``wandb login``), ``upload_checkpoints`` (False),
    ``log_config`` (False), ``text`` ("history"). See docs/wandb.md.
    """

    name = "wandb"
    requires = ("wandb",)
    install_hint = 'pip install "trackbridge[wandb]"'

    def __init__(self, **options: Any) -> None:
        # Construction only validates: Tune pickles the callback (and this object) before the run.
        self.options: WandbOptions = parse_options(options)
        self._init_runtime()

    # ------------------------------------------------------------------ pickling (tuner.pkl)
    def _init_runtime(self) -> None:
        self._wandb: Any = None
        self._runs: dict[str, _TrialRun] = {}
        #: Trials whose wandb.init failed, with the error: their results fail fast instead of each retrying
        #: wandb.init (which online can wait up to init_timeout); the next trial start tries again.
        self._failed_open: dict[str, str] = {}
        self._experiment: ExperimentInfo | None = None
        self._api_key: str | None = None
        self._warn = WarnOnce(self.name, logger)

    def __getstate__(self) -> dict[str, Any]:
        # Never pickle the API key, the SDK module or open runs: a restored experiment finds the key again
        # in api_key_file or WANDB_API_KEY and reopens its runs with resume="allow".
        return {"options": self.options.without_secrets()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.options = state["options"]
        self._init_runtime()

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def trackbridge_setup(self) -> None:
        """Import wandb and start its service here, so both overlap with Tune starting its trials."""
        try:
            import wandb
        except ImportError as exc:  # pragma: no cover - guarded by `requires`
            raise ImportError(f"the wandb plugin needs wandb: {self.install_hint}") from exc
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
        update = {k: v for k, v in changes.items() if not self._is_wandb_key(trial, k)}
        if update:
            state.run.config.update(update, allow_val_change=True)

    @hookimpl
    def trackbridge_trial_result(self, trial: TrialInfo, step: int, metrics: Mapping[str, Any]) -> None:
        state = self._state(trial)
        if state.last_step is not None and step <= state.last_step:
            # W&B already has this step (a resumed online run): logging it would only earn a warning.
            self._warn(f"replay:{trial.trial_id}", f"trial {trial.trial_id}: steps up to {state.last_step} "
                       "are already in its W&B run; not logged again")
            return
        row, summary = convert.history_row(
            step, metrics, text_mode=self.options.text, wandb=self._wandb, warn=self._warn
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
        scratch = None
        fs = checkpoint.filesystem
        if fs is not None and getattr(fs, "type_name", "local") != "local":
            scratch = tempfile.mkdtemp(prefix="trackbridge-wandb-")
        try:
            local = checkpoint.local_directory(scratch or tempfile.gettempdir())
            if not os.path.isdir(local):
                raise FileNotFoundError(
                    f"checkpoint {checkpoint.path} of step {checkpoint.step} is gone (deleted by Tune's "
                    "num_to_keep before it could be uploaded?)"
                )
            metadata = convert.json_safe(checkpoint.metrics)
            if checkpoint.step is not None:
                metadata[convert.STEP_METRIC] = checkpoint.step
            metadata["trial_id"] = trial.trial_id
            artifact = self._wandb.Artifact(
                name=convert.artifact_name(trial.trial_name), type="model", metadata=metadata
            )
            # add_dir copies the files into W&B's staging area now (policy "mutable"), so Tune may delete
            # the checkpoint afterwards; the upload itself runs in W&B's service, not on this thread.
            artifact.add_dir(local)
            aliases = ["latest"]
            if checkpoint.step is not None:
                aliases.append(f"step_{checkpoint.step}")
            state.run.log_artifact(artifact, aliases=aliases)
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)

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

    def _overrides(self, trial: TrialInfo) -> dict[str, Any]:
        """The trial's ``wandb`` config sub-dict, reduced to the keys it may set."""
        raw = trial.nested_config.get(CONFIG_KEY)
        if not isinstance(raw, Mapping):
            return {}
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in TRIAL_OVERRIDES:
                reason = MANAGED_INIT_KEYWORDS.get(key, "not a wandb.init keyword the plugin passes on")
                self._warn(f"override:{key}", f"config['wandb'][{key!r}] is ignored: {reason}")
                continue
            if value == REDACTED:
                self._warn(f"override:{key}", f"config['wandb'][{key!r}] is redacted; ignored")
                continue
            out[key] = value
        return out

    @staticmethod
    def _is_wandb_key(trial: TrialInfo, key: str) -> bool:
        if not isinstance(trial.nested_config.get(CONFIG_KEY), Mapping):
            return False
        return key == CONFIG_KEY or key.startswith(CONFIG_KEY + "/")

    def _config(self, trial: TrialInfo) -> dict[str, Any]:
        """The config a run records: the trial's flattened config without its ``wandb`` sub-dict."""
        return {k: v for k, v in trial.config.items() if not self._is_wandb_key(trial, k)}

    def _open(self, trial: TrialInfo, last_step: int | None) -> _TrialRun:
        wandb = self._wandb
        if wandb is None:  # driven without trackbridge_setup (defensive)
            self.trackbridge_setup()
            wandb = self._wandb
        experiment = trial.experiment_name or (self._experiment.name if self._experiment else "tune")
        kwargs: dict[str, Any] = {
            "project": os.environ.get("WANDB_PROJECT") or convert.project_name(experiment),
            "group": experiment,
        }
        kwargs.update({k: v for k, v in self.options.init.items() if v is not None})
        overrides = self._overrides(trial)
        settings = dict(DEFAULT_SETTINGS)
        settings.update(self.options.settings)
        trial_settings = overrides.pop("settings", None)
        if isinstance(trial_settings, Mapping):
            # a key in a trial's config is redacted, never a usable secret: only the plugin's own key counts
            settings.update({k: v for k, v in trial_settings.items() if k != "api_key" and v != REDACTED})
        kwargs["id"] = convert.run_id(trial.trial_id)
        kwargs["name"] = trial.trial_name
        kwargs.update(overrides)
        if kwargs.get("dir"):
            os.makedirs(kwargs["dir"], exist_ok=True)
        if effective_mode(kwargs, settings) in ONLINE_MODES:
            # Only an online run needs the key, and it goes into this run's settings, never into
            # wandb.login() (which would write ~/.netrc) nor into the config.
            if self._api_key is None:
                self._api_key = resolve_api_key(self.options)
            if self._api_key:
                settings["api_key"] = self._api_key
        kwargs.setdefault("allow_val_change", True)  # a restored PBT trial may come back with a new config
        run = wandb.init(
            config=self._config(trial),
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
