"""Helpers for plugin authors: drive a plugin through scripted trial lifecycles without Ray.

    from trackbridge.testing import drive, scripted_trial

    drive(MyPlugin(), [scripted_trial("t1", results=[{"loss": 1.0}, {"loss": 0.5}])])

``drive`` calls the hooks exactly as TrackBridge's worker does (same order, same thread for every call, flush
before completion), so a plugin that passes here behaves the same under a real Tune run.
"""

from __future__ import annotations

from trackbridge.testing.driver import (
    RecordingPlugin,
    ScriptedTrial,
    drive,
    scripted_trial,
)

__all__ = ["RecordingPlugin", "ScriptedTrial", "drive", "scripted_trial"]
