"""Opening one trial's Comet experiment: its key, its configuration, and the SDK's process-global state.

- **One key per trial, always the same**: ``experiment_key`` hashes the Tune experiment's name and the trial id
  into 40 hex digits (Comet takes 32-50 alphanumeric characters). Every opening of a trial's experiment (the
  first, a reopening after Tune retried the trial, one after ``Tuner.restore`` in a new process) uses
  ``comet_ml.start(mode="get_or_create", experiment_key=key)``: online, Comet continues the experiment if it
  exists; offline, each opening writes its own archive for the same key, and ``comet upload`` creates the
  experiment from the first archive it uploads and appends the others to it, in whatever order they come.
- **Privacy and size**: Comet logs the driver's source code, git patch, installed packages, host details
  and system metrics by default; ``config_kwargs`` turns all of that off unless ``log_environment`` is set.
- **Many experiments at once**: comet_ml keeps one process-global "running experiment", and creating an
  experiment ends the previous global one. ``open_experiment`` creates each experiment with the global slot
  empty and puts back what was there, so the trials' experiments (and a user's own) never end each other.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

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
    if not online:
        _prompt_offline_end(experiment)
    return experiment


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
