"""The MLflow plugin's options: validated on the user's thread when the callback is built, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

LONG_PARAM_MODES = ("truncate", "tag", "artifact")


@dataclass(frozen=True)
class MlflowOptions:
    """Everything ``plugins={"mlflow": {...}}`` accepts; see docs/mlflow.md for the full story.

    The names and meanings of the first seven follow Ray's ``MLflowLoggerCallback`` so a user can switch
    without relearning them.
    """

    #: Where runs go; None: ``$MLFLOW_TRACKING_URI``, else MLflow's default (``sqlite:///mlflow.db``).
    tracking_uri: str | None = None
    #: The model registry's URI, passed to ``MlflowClient`` (None: MLflow's default).
    registry_uri: str | None = None
    #: The MLflow experiment; None: the Tune experiment's name. Created when missing.
    experiment_name: str | None = None
    #: Extra tags set on every run this plugin creates.
    tags: Mapping[str, str] = field(default_factory=dict)
    #: Exported as ``MLFLOW_TRACKING_TOKEN`` for the client; never pickled, logged, or stored in a run.
    tracking_token: str | None = None
    #: Log each checkpoint directory as artifacts under ``checkpoints/<step>``.
    save_artifact: bool = False
    #: Log the config as params when the trial ends instead of when it starts.
    log_params_on_trial_end: bool = False
    #: One experiment-level parent run holding every trial run as a nested run.
    parent_run: bool = False
    #: What to do with a param value longer than MLflow's limit: "truncate", "tag" or "artifact".
    long_params: str = "truncate"
    #: Artifact location of an experiment this plugin creates (None: the server's/MLflow's default).
    artifact_location: str | None = None
    #: How many more flushes may retry a batch whose ``log_batch`` failed before it is dropped.
    flush_retries: int = 3

    def __post_init__(self) -> None:
        for name in ("tracking_uri", "registry_uri", "experiment_name", "tracking_token", "artifact_location"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"mlflow option {name}= must be a string or None, got {type(value).__name__}")
            if isinstance(value, str) and not value.strip():
                raise ValueError(f"mlflow option {name}= must not be empty")
        tags = self.tags if self.tags is not None else {}
        if not isinstance(tags, Mapping):
            raise TypeError(f"mlflow option tags= must be a dict of strings, got {type(tags).__name__}")
        object.__setattr__(self, "tags", {str(k): str(v) for k, v in tags.items()})
        for name in ("save_artifact", "log_params_on_trial_end", "parent_run"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"mlflow option {name}= must be True or False")
        if self.long_params not in LONG_PARAM_MODES:
            raise ValueError(
                f"mlflow option long_params= must be one of {', '.join(map(repr, LONG_PARAM_MODES))}, "
                f"got {self.long_params!r}"
            )
        if not isinstance(self.flush_retries, int) or isinstance(self.flush_retries, bool) or self.flush_retries < 0:
            raise ValueError("mlflow option flush_retries= must be a non-negative integer")

    def without_secrets(self) -> "MlflowOptions":
        """A copy fit for pickling (``tuner.pkl``): the token is dropped."""
        return replace(self, tracking_token=None)

    def public(self) -> dict[str, Any]:
        """The options as a dict with secrets masked, for logs and reprs."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if out.get("tracking_token"):
            out["tracking_token"] = "***"
        return out
