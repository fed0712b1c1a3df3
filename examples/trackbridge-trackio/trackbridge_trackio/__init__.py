"""TrackBridge plugin for Trackio (``plugins=["trackio"]``), shipped in a distribution of its own."""

from trackbridge_trackio.plugin import TrackioOptions, TrackioPlugin
from trackbridge_trackio.reader import StoredTrial, read_project

__all__ = ["StoredTrial", "TrackioOptions", "TrackioPlugin", "read_project"]
