"""``StoredSummary``: what one tracker holds for one experiment, read back with the tracker's own reader.

``trackbridge demo`` prints one line per tracker from it, so a user can compare what Tune reported with what
each tracker kept. A plugin fills it in ``TrackerPlugin.stored_summary(experiment)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The statuses a summary counts, in the order they are shown.
STATUSES = ("completed", "failed", "unfinished")
#: Run statuses as MLflow names them (and the Aim and Comet plugins store them), as a summary counts them.
STATUS_OF_WORD = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "unfinished", "RUNNING": "unfinished"}


@dataclass
class StoredSummary:
    """Counts over every run the tracker holds for one Tune experiment (one run per trial)."""

    #: Runs (a parent run, when the tracker keeps one, is not counted).
    runs: int = 0
    #: Values of the trials' own metrics stored, over every run: one per metric and step (TrackBridge's
    #: own marks, like ``trackbridge/exploit``, and the step counter itself are not counted).
    metric_points: int = 0
    #: Parameters (config entries, nested ones counted one by one) stored, over every run.
    params: int = 0
    #: Artifacts (checkpoints, files, models) stored, over every run; None when the tracker has none.
    artifacts: int | None = 0
    #: Runs by status ("completed", "failed", "unfinished"); empty when the tracker keeps no status.
    statuses: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``dataclasses.asdict`` would turn the ``Counter`` of statuses inside out)."""
        return {
            "runs": self.runs,
            "metric_points": self.metric_points,
            "params": self.params,
            "artifacts": self.artifacts,
            "statuses": dict(self.statuses),
        }

    def status_text(self) -> str:
        """E.g. ``"3 completed, 1 failed"``; ``"-"`` when the tracker keeps no status."""
        shown = [f"{self.statuses[s]} {s}" for s in STATUSES if self.statuses.get(s)]
        shown += [f"{n} {s}" for s, n in sorted(self.statuses.items()) if s not in STATUSES and n]
        return ", ".join(shown) or "-"


def is_own_metric(name: str) -> bool:
    """False for TrackBridge's marks (``trackbridge/...``) and the step counters, which a summary skips."""
    return not name.startswith(("trackbridge/", "_")) and name not in ("training_iteration", "trial_step")


def count_leaves(config: Any) -> int:
    """How many parameters a (possibly nested) config holds."""
    if isinstance(config, Mapping):
        return sum(count_leaves(v) for v in config.values())
    return 1


def count_points(series: Iterable[tuple[str, int]]) -> int:
    """How many (metric, count) pairs' counts add up to, for the metrics a summary counts."""
    return sum(n for name, n in series if is_own_metric(name))
