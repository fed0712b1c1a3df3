"""Read back what ``TrackioPlugin`` stored, with Trackio's own readers (``trackio.Api`` for runs, configs and
alerts; ``SQLiteStorage.get_logs`` for the metric rows, which ``Api`` does not expose in Trackio 0.43)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The plugin's alert titles, and the status each stands for.
STATUS_OF_ALERT = {"Trial completed": "completed", "Trial failed": "failed", "Trial unfinished": "unfinished"}


@dataclass
class StoredTrial:
    """One Tune trial as Trackio holds it."""

    trial_id: str
    names: list[str] = field(default_factory=list)  # one per Trackio run holding the trial (1 expected)
    config: dict[str, Any] = field(default_factory=dict)
    #: every metric row, in storage order: (step, {name: value})
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def steps(self, key: str) -> list[int]:
        """The steps of the rows holding ``key``, in storage order."""
        return [step for step, values in self.rows if key in values]

    def series(self, key: str) -> list[tuple[int, Any]]:
        return [(step, values[key]) for step, values in self.rows if key in values]

    @property
    def status(self) -> str:
        """The last ending recorded (``completed`` / ``failed`` / ``unfinished``), else ``running``."""
        endings = [a for a in self.alerts if a.get("title") in STATUS_OF_ALERT]
        endings.sort(key=lambda a: a.get("timestamp") or "")
        return STATUS_OF_ALERT[endings[-1]["title"]] if endings else "running"


def read_project(project: str) -> dict[str, StoredTrial]:
    """Every trial the plugin stored in ``project`` (Trackio's storage folder of this process), by trial id."""
    from trackio import Api
    from trackio.sqlite_storage import SQLiteStorage

    if project not in SQLiteStorage.get_projects():
        return {}
    trials: dict[str, StoredTrial] = {}
    for run in Api().runs(project):
        config = dict(run.config or {})
        trial_id = str(config.get("trackbridge/trial_id", run.name))
        trial = trials.setdefault(trial_id, StoredTrial(trial_id))
        trial.names.append(run.name)
        trial.config = {k: v for k, v in config.items() if not k.startswith("_")}
        for row in SQLiteStorage.get_logs(project, run.name, run_id=run.id):
            values = {k: v for k, v in row.items() if k not in ("step", "timestamp")}
            trial.rows.append((int(row["step"]), values))
        trial.alerts.extend(run.alerts())
    return trials
