"""The Comet plugin's declared options: validated by ``PluginOptions.parse`` on the user's thread when the
callback is built (unknown names with a "did you mean", types, choices, checks), without importing comet_ml.

The API key is declared secret, so the base's ``without_secrets()`` keeps it out of ``tuner.pkl``; a plugin
process of its own (``isolate=``) still receives it, over its socket (``TrackerPlugin.process_state``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trackbridge import PluginOptions, option

MODES = ("offline", "online")

#: Keyword arguments of ``comet_ml.ExperimentConfig`` (comet_ml 3.58) that ``experiment_config`` may set.
EXPERIMENT_CONFIG_KEYS: frozenset[str] = frozenset(
    {
        "disabled",
        "log_code",
        "log_graph",
        "parse_args",
        "display_summary_level",
        "log_git_metadata",
        "log_git_patch",
        "log_env_details",
        "log_env_gpu",
        "log_env_host",
        "log_env_cpu",
        "log_env_network",
        "log_env_disk",
        "auto_output_logging",
        "auto_param_logging",
        "auto_metric_logging",
        "auto_log_co2",
        "auto_metric_step_rate",
        "auto_histogram_epoch_rate",
        "auto_histogram_gradient_logging",
        "auto_histogram_activation_logging",
        "auto_histogram_tensorboard_logging",
        "auto_histogram_weight_logging",
        "distributed_node_identifier",
    }
)

#: ``ExperimentConfig`` keywords the plugin sets itself, per trial, and what to use instead.
MANAGED_CONFIG_KEYS: Mapping[str, str] = {
    "name": "each experiment is named after its trial",
    "tags": "use the plugin's 'tags' option",
    "offline_directory": "use the plugin's 'offline_directory' option",
}

#: Comet's limit on project names (its server answers "should be < 100 characters").
PROJECT_NAME_LIMIT = 100


def _check_name(value: str | None) -> None:
    if value is not None and not value.strip():
        raise ValueError("must not be empty")


def _check_project(value: str | None) -> None:
    if value is None:
        return
    _check_name(value)
    if len(value) >= PROJECT_NAME_LIMIT:
        raise ValueError(f"must have fewer than {PROJECT_NAME_LIMIT} characters (Comet's limit), got {len(value)}")
    if "/" in value:
        raise ValueError("must not contain '/' (Comet addresses projects as <workspace>/<project>)")


def _as_list(value: Any) -> Any:
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    return value


def _check_tags(value: list[str] | None) -> None:
    for tag in value or []:
        if not isinstance(tag, str) or not tag.strip():
            raise TypeError(f"must be a list of non-empty strings, got {tag!r} in it")


def _local_directory(value: Any) -> Any:
    """A path as an absolute local directory (resolved when the callback is built, so a restored run writes to the
    same place); a URI is refused: Comet writes its archives with plain file I/O on the driver."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        return value
    if "://" in value:
        raise ValueError(f"must be a local directory, got {value!r} (Comet writes offline archives on the driver)")
    return os.path.abspath(os.path.expanduser(value))


def _config_dict(value: Any) -> Any:
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else value


def _check_experiment_config(value: Mapping[str, Any] | None) -> None:
    for key in value or {}:
        if key in MANAGED_CONFIG_KEYS:
            raise ValueError(f"may not set {key!r}: {MANAGED_CONFIG_KEYS[key]}")
        if key not in EXPERIMENT_CONFIG_KEYS:
            close = difflib.get_close_matches(key, sorted(EXPERIMENT_CONFIG_KEYS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{key!r} is not a comet_ml.ExperimentConfig keyword{hint}")


@dataclass(frozen=True)
class CometOptions(PluginOptions):
    """Everything ``plugins={"comet": {...}}`` accepts; see docs/comet.md for the full story.

    ``api_key``, ``workspace``, ``project_name``, ``tags`` and ``save_checkpoints`` mean what they mean for Ray's
    ``CometLoggerCallback``, so a user can switch without relearning them.
    """

    mode: str | None = option(
        None,
        doc="'offline' (archives on disk, uploaded later with `comet upload`) or 'online'; None: online when an "
        "API key is configured (api_key, $COMET_API_KEY or Comet's config file), else offline",
        choices=(None, *MODES),
    )
    api_key: str | None = option(
        None,
        doc="the Comet API key for online mode (else $COMET_API_KEY / Comet's config file); never pickled or logged",
        secret=True,
        check=_check_name,
    )
    workspace: str | None = option(None, doc="the Comet workspace; None: Comet's default", check=_check_name)
    project_name: str | None = option(
        None,
        doc="the Comet project every trial's experiment goes to; None: Comet's default ($COMET_PROJECT_NAME, else "
        "Comet's 'uncategorized' project)",
        check=_check_project,
    )
    tags: list[str] | None = option(
        default_factory=list,
        doc="extra tags on every experiment (the Tune experiment's name is always one)",
        convert=_as_list,
        check=_check_tags,
    )
    offline_directory: str | None = option(
        None,
        doc="where offline archives go; None: <experiment directory>/comet when Tune's storage is local",
        convert=_local_directory,
    )
    save_checkpoints: bool = option(False, doc="log every checkpoint Tune persists as a Comet model (log_model)")
    log_environment: bool = option(
        False,
        doc="let Comet log the driver's code, git metadata and patch, installed and OS packages, host and system "
        "metrics (all off by default)",
    )
    experiment_config: dict[str, Any] | None = option(
        default_factory=dict,
        doc="more comet_ml.ExperimentConfig keywords; they win over the plugin's defaults",
        convert=_config_dict,
        check=_check_experiment_config,
    )
    quiet: bool = option(
        True, doc="drop Comet's INFO console lines caused by this plugin's calls (warnings and errors still show)"
    )

    def __post_init__(self) -> None:
        # ``parse`` converts only values that are not None: None means none.
        if self.tags is None:
            object.__setattr__(self, "tags", [])
        if self.experiment_config is None:
            object.__setattr__(self, "experiment_config", {})
