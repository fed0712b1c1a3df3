"""pluggy's two markers for TrackBridge: ``hookspec`` marks the specification, ``hookimpl`` a plugin's hooks.

Plugin authors import ``hookimpl`` from ``trackbridge``: ``@trackbridge.hookimpl def trackbridge_trial_result(...)``.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "trackbridge"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]
