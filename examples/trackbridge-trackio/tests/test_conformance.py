"""TrackBridge's conformance kit on the Trackio plugin, read back with Trackio's own readers."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from trackbridge_trackio import read_project

from trackbridge.testing import StoredRuns
from trackbridge.testing.pytest_plugin import PluginConformance


def project_for(directory: Path) -> str:
    """One Trackio project per scenario folder (Trackio's folder is one per process, see conftest.py)."""
    return "kit-" + hashlib.sha1(str(directory).encode()).hexdigest()[:12]


def read_back(directory: Path) -> StoredRuns:
    stored = StoredRuns()
    for trial_id, trial in read_project(project_for(directory)).items():
        stored.runs_per_trial[trial_id] = len(trial.names)
        stored.steps[trial_id] = trial.steps("loss")
        stored.statuses[trial_id] = trial.status
        if trial.steps("batch_loss"):
            stored.logged_steps[trial_id] = trial.steps("batch_loss")
    return stored


class TestTrackioConformance(PluginConformance):
    plugin = "trackio"

    def plugin_options(self, directory: Path) -> dict[str, Any]:
        return {"project": project_for(directory)}

    def read_back(self, directory: Path) -> StoredRuns:
        return read_back(directory)
