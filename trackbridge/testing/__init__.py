"""Helpers for plugin authors: drive a plugin through scripted trial lifecycles without Ray.

    from trackbridge.testing import drive, scripted_trial

    drive(MyPlugin(), [scripted_trial("t1", results=[{"loss": 1.0}, {"loss": 0.5}])])

``drive`` delivers through the core's own dispatcher (one worker thread, the core's ordering and flushes),
but sends one simple lifecycle per trial, trials one after the other: no pauses, restores, config updates
or interleaving. It is a quick check, not a substitute for one real Tune run.

``check_plugin`` (the conformance kit) runs a plugin through every lifecycle the hook contract promises
(interleaved trials, failure, unfinished, pause/resume, restore in a new process, odd values) and, given a
reader of what the tracker stored, checks that nothing was lost, duplicated or mislabelled.
"""

from __future__ import annotations

from trackbridge.testing.conformance import ConformanceReport, StoredRuns, check_plugin
from trackbridge.testing.driver import (
    RecordingPlugin,
    ScriptedLog,
    ScriptedTrial,
    drive,
    scripted_trial,
)

__all__ = [
    "ConformanceReport",
    "RecordingPlugin",
    "ScriptedLog",
    "ScriptedTrial",
    "StoredRuns",
    "check_plugin",
    "drive",
    "scripted_trial",
]
