"""TrackBridge's exceptions."""

from __future__ import annotations


class PluginError(ValueError):
    """A plugin request that cannot be satisfied (unknown name, missing SDK, bad options, bad hooks)."""


class MissingTrackerError(PluginError, ImportError):
    """The plugin is installed but its tracker SDK is not."""


class TransientError(Exception):
    """Raise (or wrap) this from a hook when the failure may go away by itself (a server briefly gone).

    The worker retries the same call with exponential backoff before counting the event as failed. A plugin
    may instead list exception types in a ``retry_on`` attribute (``retry_on = (ConnectionError,)``).
    """


class TrackerFailure(RuntimeError):
    """With ``fail_fast=True``: a plugin failed, and the user asked for that to stop the Tune run."""


class CheckpointGone(FileNotFoundError):
    """A reported checkpoint no longer exists when a plugin reaches it (see ``CheckpointInfo.local_copy``)."""
