"""TrackBridge: one Ray Tune callback for every experiment tracker.

    from trackbridge import TrackBridgeCallback
    tune.RunConfig(callbacks=[TrackBridgeCallback(plugins=["wandb", "mlflow", "tensorboard"])])

This module is the public face. Users need ``TrackBridgeCallback``; plugin authors need ``hookimpl``, the
event values, the optional ``TrackerPlugin`` base with its declared ``PluginOptions``, and the value and
secret helpers every first-party plugin uses too. Plugins register under the entry-point group
``trackbridge``; the hooks they implement are specified (and documented) in ``trackbridge.hookspecs``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trackbridge.errors import CheckpointGone, MissingTrackerError, PluginError, TrackerFailure, TransientError
from trackbridge.events import CheckpointInfo, ExperimentInfo, LoggedFile, TrialInfo, TrialStatus
from trackbridge.markers import hookimpl
from trackbridge.options import PluginOptions, option
from trackbridge.plugin_base import TrackerPlugin
from trackbridge.secrets import REDACTED, is_secret_key, mask_uri, strip_uri_credentials
from trackbridge.stored_summary import StoredSummary
from trackbridge.trial_logging import TrialLogger, get_logger, log, log_artifact
from trackbridge.values import HISTOGRAM, SCALAR, SKIP, TEXT, WarnOnce, classify, flatten, to_float

if TYPE_CHECKING:
    from trackbridge.callback import TrackBridgeCallback
    from trackbridge.train_callback import TrackBridgeTrainCallback

__version__ = "0.1.0"

__all__ = [
    "HISTOGRAM",
    "REDACTED",
    "SCALAR",
    "SKIP",
    "TEXT",
    "CheckpointGone",
    "CheckpointInfo",
    "ExperimentInfo",
    "LoggedFile",
    "MissingTrackerError",
    "PluginError",
    "PluginOptions",
    "StoredSummary",
    "TrackBridgeCallback",
    "TrackBridgeTrainCallback",
    "TrackerFailure",
    "TrackerPlugin",
    "TransientError",
    "TrialInfo",
    "TrialLogger",
    "TrialStatus",
    "WarnOnce",
    "__version__",
    "classify",
    "flatten",
    "get_logger",
    "hookimpl",
    "is_secret_key",
    "log",
    "log_artifact",
    "mask_uri",
    "option",
    "strip_uri_credentials",
    "to_float",
]


def __getattr__(name: str) -> Any:
    # The callback imports Ray; load it only when asked for, so plugin authors (and the conformance kit)
    # can use the hook API without importing Ray.
    if name == "TrackBridgeCallback":
        from trackbridge.callback import TrackBridgeCallback

        return TrackBridgeCallback
    if name == "TrackBridgeTrainCallback":
        from trackbridge.train_callback import TrackBridgeTrainCallback

        return TrackBridgeTrainCallback
    raise AttributeError(f"module 'trackbridge' has no attribute {name!r}")
