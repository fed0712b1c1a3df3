"""TrackBridge: one Ray Tune callback for every experiment tracker.

    from trackbridge import TrackBridgeCallback
    tune.RunConfig(callbacks=[TrackBridgeCallback(plugins=["wandb", "mlflow", "tensorboard"])])

Tracker plugins implement the hooks in ``trackbridge.hookspecs`` with methods marked ``@trackbridge.hookimpl``
and register under the entry-point group ``trackbridge``.
"""

from __future__ import annotations

from typing import Any

from trackbridge.events import CheckpointInfo, ExperimentInfo, TrialInfo, TrialStatus
from trackbridge.errors import MissingTrackerError, PluginError, TrackerFailure, TransientError
from trackbridge.plugins import hookimpl

__version__ = "0.1.0"

__all__ = [
    "CheckpointInfo",
    "ExperimentInfo",
    "MissingTrackerError",
    "PluginError",
    "TrackBridgeCallback",
    "TrackerFailure",
    "TransientError",
    "TrialInfo",
    "TrialStatus",
    "hookimpl",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The callback imports Ray; load it only when asked for, so plugin authors (and the conformance kit)
    # can use the hook API without importing Ray.
    if name == "TrackBridgeCallback":
        from trackbridge.callback import TrackBridgeCallback

        return TrackBridgeCallback
    raise AttributeError(f"module 'trackbridge' has no attribute {name!r}")
