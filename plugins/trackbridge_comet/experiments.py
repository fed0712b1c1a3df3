"""Opening one trial's Comet experiment: its key, its configuration, and the SDK's process-global state.

- **One key per trial, always the same**: ``experiment_key`` hashes the Tune experiment's name and the trial id
  into 40 hex digits (Comet takes 32-50 alphanumeric characters). Every opening of a trial's experiment (the
  first, one after ``Tuner.restore``, also with ``resume_errored=True`` for a trial whose experiment had
  ended) uses ``comet_ml.start(mode="get_or_create", experiment_key=key)``: online, Comet continues the
  experiment if it exists; offline, each opening writes its own archive for the same key, and ``comet upload``
  creates the experiment from the first archive it uploads and appends the others to it, in whatever order
  they come. (A trial Tune retries after a failure stays open: its experiment simply continues.)
- **Started, or an error**: ``Experiment._start`` catches its own errors (a refused key, a project it cannot
  create) and leaves the experiment not ``alive``, which then drops everything logged to it without a word.
  ``open_experiment`` raises instead, so the event is counted as not delivered.
- **No API key in an error**: comet_ml puts the key in some exceptions (``InvalidAPIKey('<key>', host)``), and
  TrackBridge logs hook errors and may keep their ``repr`` in its delivery report. ``masks_secrets`` (on every
  hook) re-raises such an error as a ``RuntimeError`` with each key in play replaced by ``***``.
- **Privacy and size**: Comet logs the driver's source code, git patch, installed packages, host details
  and system metrics by default; ``config_kwargs`` turns all of that off unless ``log_environment`` is set.
- **Many experiments at once**: comet_ml keeps one process-global "running experiment", and creating an
  experiment ends the previous global one. ``open_experiment`` creates each experiment with the global slot
  empty and puts back what was there, so the trials' experiments (and a user's own) never end each other.
"""

from __future__ import annotations

import functools
import hashlib
import os
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from trackbridge import TrialStatus
from trackbridge_comet import values as convert

#: The "status" other of an ended experiment (Comet has no failed state; the words are MLflow's run statuses).
STATUS_WORDS: Mapping[TrialStatus, str] = {
    TrialStatus.COMPLETED: "FINISHED",
    TrialStatus.FAILED: "FAILED",
    TrialStatus.UNFINISHED: "KILLED",
}

#: The plugin's ``ExperimentConfig`` defaults: nothing but what TrackBridge logs (see docs/comet.md).
PRIVATE_DEFAULTS: Mapping[str, Any] = {
    "log_code": False,
    "log_graph": False,
    "parse_args": False,
    "log_git_metadata": False,
    "log_git_patch": False,
    "log_env_details": False,
    "log_env_gpu": False,
    "log_env_host": False,
    "log_env_cpu": False,
    "log_env_network": False,
    "log_env_disk": False,
    "auto_output_logging": False,
    "auto_param_logging": False,
    "auto_metric_logging": False,
    "auto_log_co2": False,
    "auto_histogram_tensorboard_logging": False,
    "auto_histogram_weight_logging": False,
    "auto_histogram_gradient_logging": False,
    "auto_histogram_activation_logging": False,
    "display_summary_level": 0,
}

#: What ``log_environment=True`` turns back on: the driver's code, git state, packages, host and system metrics.
ENVIRONMENT: Mapping[str, Any] = {
    "log_code": True,
    "log_git_metadata": True,
    "log_git_patch": True,
    "log_env_details": True,
    "log_env_gpu": True,
    "log_env_host": True,
    "log_env_cpu": True,
    "log_env_network": True,
    "log_env_disk": True,
}


def experiment_key(experiment_name: str, trial_id: str) -> str:
    """A trial's Comet experiment key: 40 hex digits of SHA-256 over the Tune experiment's name and the trial id."""
    return hashlib.sha256(f"trackbridge\0{experiment_name}\0{trial_id}".encode()).hexdigest()[:40]


def config_kwargs(log_environment: bool, extra: Mapping[str, Any]) -> dict[str, Any]:
    """``ExperimentConfig`` keywords: the private defaults, the environment when asked for, then the user's."""
    kwargs = dict(PRIVATE_DEFAULTS)
    if log_environment:
        kwargs.update(ENVIRONMENT)
    kwargs.update(extra)
    return kwargs


def import_comet() -> Any:
    """``import comet_ml`` without its framework auto-logging (the import hooks that patch Keras, PyTorch, ... in
    the driver): ``COMET_DISABLE_AUTO_LOGGING=1`` during the import, unless the user set it (or imported comet_ml
    before). The variable is removed again afterwards, so it does not leak into processes started later."""
    import sys

    if "comet_ml" in sys.modules:
        return sys.modules["comet_ml"]
    added = "COMET_DISABLE_AUTO_LOGGING" not in os.environ
    if added:
        os.environ["COMET_DISABLE_AUTO_LOGGING"] = "1"
    try:
        import comet_ml
    finally:
        if added:
            os.environ.pop("COMET_DISABLE_AUTO_LOGGING", None)
    return comet_ml


def configured_api_key() -> str | None:
    """The API key Comet itself would use: ``$COMET_API_KEY``, else Comet's config files (``comet login``)."""
    if os.environ.get("COMET_API_KEY"):
        return os.environ["COMET_API_KEY"]
    import_comet()
    config = _comet_config()
    key = config.get_api_key(None, config.get_config())
    return str(key) if key else None


def _comet_config() -> Any:
    """``comet_ml.config``, the SDK's public configuration module (typed loosely: it declares no ``__all__``)."""
    import importlib

    return importlib.import_module("comet_ml.config")


def open_experiment(
    *,
    online: bool,
    api_key: str | None,
    workspace: str | None,
    project_name: str | None,
    key: str,
    name: str,
    tags: Sequence[str],
    offline_directory: str | None,
    settings: Mapping[str, Any],
) -> Any:
    """``comet_ml.start(mode="get_or_create", ...)`` for one trial, with the global experiment slot kept as it was."""
    comet_ml = import_comet()
    comet_config = _comet_config()
    config = comet_ml.ExperimentConfig(
        name=name, tags=list(tags) or None, offline_directory=offline_directory, **dict(settings)
    )
    previous = comet_config.get_global_experiment()
    comet_config.set_global_experiment(None)  # else start() may hand back, or end, whatever experiment is running
    try:
        experiment = comet_ml.start(
            api_key=api_key if online else None,
            workspace=workspace,
            project_name=project_name,
            experiment_key=key,
            mode="get_or_create",
            online=online,
            experiment_config=config,
        )
    finally:
        comet_config.set_global_experiment(previous)
    if not getattr(experiment, "alive", True) and not getattr(experiment, "disabled", False):
        where = "online" if online else "offline"
        raise RuntimeError(
            f"trackbridge: comet: Comet could not start experiment {key} ({where}; its own error is in Comet's "
            "console output above): nothing would be logged to it"
        )
    if not online:
        _prompt_offline_end(experiment)
    return experiment


def describe(experiment: Any, trial: Any, experiment_name: str, warn: Callable[[str, str], None]) -> None:
    """Log a trial's "others" (trial id and name, Tune experiment, ``experiment_tag``) and its config as
    parameters, names and values fitted to Comet's limits (every opening: Comet keeps the latest)."""
    others = {"trial_id": trial.trial_id, "trial_name": trial.trial_name, "tune_experiment": experiment_name}
    if trial.experiment_tag:
        others["experiment_tag"] = trial.experiment_tag
    experiment.log_others({k: convert.fit_value(v, k, warn) for k, v in others.items() if v})
    params = convert.parameters(trial.config, warn)
    if params:
        experiment.log_parameters(params)


def finish(experiment: Any, status: TrialStatus, error: str | None, reopened: bool) -> None:
    """Log how the trial ended (the others ``status`` and ``error``: the failure's last characters, or "" for a
    reopened experiment whose earlier attempt may have failed) and ``end()`` the experiment (offline: its
    archive is written now)."""
    try:
        experiment.log_other("status", STATUS_WORDS[status])
        if status is TrialStatus.FAILED:
            experiment.log_other("error", convert.tail(error or "trial failed"))
        elif reopened:
            experiment.log_other("error", "")  # an earlier attempt may have failed: it is over
    finally:
        experiment.end()


#: How long an offline experiment's writer thread waits on its queue before it looks at its stop flag again.
OFFLINE_POLL_SECONDS = 0.05


def _prompt_offline_end(experiment: Any) -> None:
    """Make ``end()`` of an offline experiment take milliseconds instead of a second.

    The offline streamer thread blocks on its message queue for ``queue_timeout`` (1 s) at a time; ``end()`` sets
    its stop flag and joins it, so every ``end()`` waited up to a second, on the plugin's worker thread, once per
    trial. A shorter wait only makes the idle thread look at its flag more often (20 times a second); nothing is
    dropped (``end()`` still waits until the queue is empty). Left alone when the attribute is not there.
    """
    streamer = getattr(experiment, "streamer", None)
    if streamer is not None and isinstance(getattr(streamer, "queue_timeout", None), (int, float)):
        streamer.queue_timeout = min(streamer.queue_timeout, OFFLINE_POLL_SECONDS)


# ---------------------------------------------------------------------------------------------- secrets in errors
MASK = "***"


def keys_in_play(option_key: str | None) -> list[str]:
    """Every API key Comet may be using in this process: the option's, ``$COMET_API_KEY``, the config file's."""
    keys = [option_key, os.environ.get("COMET_API_KEY")]
    try:
        keys.append(configured_api_key())
    except Exception:  # an unreadable config file: mask what is known
        pass
    return sorted({k for k in keys if k}, key=len, reverse=True)  # longest first: one key inside another


def mask(text: str, keys: Iterable[str]) -> str:
    """``text`` with every occurrence of each key replaced by ``***``."""
    for key in keys:
        text = text.replace(key, MASK)
    return text


def without_keys(exc: BaseException, keys: Sequence[str]) -> RuntimeError | None:
    """A ``RuntimeError`` saying what ``exc`` said with the keys masked, or None when ``exc`` (its message, its
    ``repr``, its traceback and the exceptions chained to it) holds none of them."""
    shown = "".join(traceback.format_exception(exc)) + repr(exc)
    if not any(key in shown for key in keys):
        return None
    return RuntimeError(f"trackbridge: comet: {type(exc).__name__}: {mask(str(exc), keys)}")


Hook = TypeVar("Hook", bound=Callable[..., Any])


def masks_secrets(hook: Hook) -> Hook:
    """A hook of the plugin whose errors carry no API key: an error holding one (see ``without_keys``; the
    plugin's ``api_keys()`` names them) is raised again as a masked ``RuntimeError`` with no cause and no
    context, so neither TrackBridge's log line, its report nor a traceback shows the key."""

    @functools.wraps(hook)
    def masked(self: Any, *args: Any, **kwargs: Any) -> Any:
        clean: RuntimeError | None = None
        try:
            return hook(self, *args, **kwargs)
        except Exception as exc:
            clean = without_keys(exc, self.api_keys())
            if clean is None:
                raise
        raise clean  # outside the except block: the original is not even its __context__

    return masked  # type: ignore[return-value]
