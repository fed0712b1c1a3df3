"""The MLflow plugin's declared options: validated by ``PluginOptions.parse`` on the user's thread when the
callback is built (unknown names with a "did you mean", types, choices, checks), no I/O.

The token is declared secret, so the base's ``without_secrets()`` keeps it out of ``tuner.pkl``; a plugin
process of its own (``isolate=``) still receives it, over its socket (``TrackerPlugin.process_state``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trackbridge import PluginOptions, option

#: What ``long_params=`` may be (see docs/mlflow.md, "Long values").
LONG_PARAM_MODES = ("truncate", "tag", "artifact")


def _not_empty(value: str | None) -> None:
    if value is not None and not value.strip():
        raise ValueError("must not be empty")


def _string_dict(value: Any) -> Any:
    """A mapping as a dict of str -> str (MLflow tags are strings); anything else as is, for the type check
    to refuse with the option's name."""
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else value


def _non_negative(value: int) -> None:
    if value < 0:
        raise ValueError(f"must be a non-negative integer, got {value}")


@dataclass(frozen=True)
class MlflowOptions(PluginOptions):
    """Everything ``plugins={"mlflow": {...}}`` accepts; see docs/mlflow.md for the full story.

    The names and meanings of the first seven follow Ray's ``MLflowLoggerCallback`` so a user can switch
    without relearning them.
    """

    tracking_uri: str | None = option(
        None,
        doc="where runs go; None: $MLFLOW_TRACKING_URI, else MLflow's default (sqlite:///mlflow.db)",
        check=_not_empty,
    )
    registry_uri: str | None = option(
        None, doc="the model registry's URI, passed to MlflowClient (None: MLflow's default)", check=_not_empty
    )
    experiment_name: str | None = option(
        None, doc="the MLflow experiment; None: the Tune experiment's name. Created when missing", check=_not_empty
    )
    tags: dict[str, str] | None = option(
        default_factory=dict, doc="extra tags set on every run this plugin creates", convert=_string_dict
    )
    tracking_token: str | None = option(
        None,
        doc="sent as 'Authorization: Bearer <token>' with this plugin's MLflow requests only (never put into "
        "the environment); never pickled, logged, or stored in a run",
        secret=True,
        check=_not_empty,
    )
    save_artifact: bool = option(False, doc="log each checkpoint directory as artifacts under checkpoints/<step>")
    log_params_on_trial_end: bool = option(
        False, doc="log the config as params when the trial ends instead of when it starts"
    )
    parent_run: bool = option(False, doc="one experiment-level parent run holding every trial run as a nested run")
    long_params: str = option(
        "truncate", doc="what to do with a param value longer than MLflow's limit", choices=LONG_PARAM_MODES
    )
    artifact_location: str | None = option(
        None,
        doc="artifact location of an experiment this plugin creates (None: the server's/MLflow's default)",
        check=_not_empty,
    )
    flush_retries: int = option(
        3,
        doc="how many more flushes may retry a batch whose log_batch failed before it is dropped",
        check=_non_negative,
    )

    def __post_init__(self) -> None:
        # ``parse`` converts only values that are not None: tags=None means no extra tags.
        if self.tags is None:
            object.__setattr__(self, "tags", {})
