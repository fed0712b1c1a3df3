"""Helpers for plugin authors: drive a plugin through scripted trial lifecycles without Ray.

    from trackbridge.testing import drive, scripted_trial

    drive(MyPlugin(), [scripted_trial("t1", results=[{"loss": 1.0}, {"loss": 0.5}])])

``drive`` delivers through the core's own dispatcher (one worker thread, the core's ordering and flushes),
but it is not a Tune run: it sends one simple lifecycle per trial, trials one after the other, with no
pauses, restores, config updates, branches or interleaving, and none of the values Tune adds to results.

``check_plugin`` (the conformance kit) runs a plugin through the lifecycles the hook contract promises
(interleaved trials, failure, unfinished, pause/resume, a restore continued in a new interpreter, a config
update, a PBT branch going back in steps, odd values, flushes between any two results, in-trial values)
and, given a reader of what the tracker stored, checks that nothing was lost, duplicated or mislabelled.
``trackbridge.testing.pytest_plugin`` makes each scenario a pytest test and adds one small real Tune run.
"""

from __future__ import annotations

from trackbridge.testing.conformance import SCENARIOS, ConformanceReport, StoredRuns, check_plugin
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
    "SCENARIOS",
    "ScriptedLog",
    "ScriptedTrial",
    "StoredRuns",
    "check_plugin",
    "drive",
    "scripted_trial",
]
