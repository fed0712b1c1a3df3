"""The delivery report: per plugin, what was delivered, failed or dropped, written at experiment end."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

from trackbridge.events import ExperimentInfo
from trackbridge.ledger import PluginStats

logger = logging.getLogger("trackbridge")
REPORT_FILE = "trackbridge_report.json"


def format_table(rows: list[dict[str, Any]]) -> str:
    header = f"{'plugin':<16}{'delivered':>10}{'failed':>8}{'dropped':>9}{'busy s':>9}{'max lag s':>11}  status"
    lines = [header]
    for r in rows:
        status = "disabled: " + r["disabled_reason"] if r["disabled_reason"] else "ok"
        lines.append(
            f"{r['plugin']:<16}{r['delivered']:>10}{r['failed']:>8}{r['dropped']:>9}"
            f"{r['busy_seconds']:>9.2f}{r['max_lag_seconds']:>11.2f}  {status}"
        )
    return "\n".join(lines)


def report_directory(experiment: ExperimentInfo | None) -> str | None:
    """The experiment's own directory when it is local (where users look), else the driver's staging copy."""
    if experiment is None:
        return None
    if experiment.path and experiment.filesystem is None:
        return experiment.path
    return experiment.local_path


def write_report(
    *,
    experiment: ExperimentInfo | None,
    stats: Iterable[PluginStats],
    finished: dict[str, bool],
    drain_seconds: float,
    skipped_replays: int,
    late_trial_logs: int = 0,
) -> dict[str, Any]:
    rows = [s.as_dict() for s in stats]
    for row in rows:
        row["drained"] = finished.get(row["plugin"], True)
    report = {
        "experiment": experiment.name if experiment else None,
        "written_at": time.time(),
        "drain_seconds": round(drain_seconds, 3),
        "skipped_replayed_results": skipped_replays,
        "late_trial_logs": late_trial_logs,
        "plugins": rows,
    }
    troubled = any(r["failed"] or r["dropped"] or not r["drained"] for r in rows)
    log = logger.warning if troubled else logger.info
    log("trackbridge: delivery report (drain took %.2fs)\n%s", drain_seconds, format_table(rows))
    directory = report_directory(experiment)
    if directory:
        try:
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, REPORT_FILE)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2)
            report["path"] = path
        except OSError as exc:
            logger.warning("trackbridge: could not write the delivery report: %s", exc)
    return report
