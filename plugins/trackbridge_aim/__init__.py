"""TrackBridge's Aim plugin: one Aim run per Tune trial (see docs/aim.md)."""

from __future__ import annotations

from trackbridge_aim.plugin import AimPlugin

__all__ = ["AimPlugin"]
