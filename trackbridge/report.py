"""The delivery report: per plugin, what was delivered, failed or dropped, written at experiment end."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from trackbridge import experiment_files
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


def write_report(
    *,
    experiment: ExperimentInfo | None,
    stats: Iterable[PluginStats],
    finished: dict[str, bool],
    drain_seconds: float,
    skipped_replays: int,
    late_trial_logs: int = 0,
    unpinned_checkpoints: int = 0,
    file_name: str = REPORT_FILE,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Log the report and write it as ``file_name`` in the experiment directory; ``extra``: more sections
    (a replay's own account)."""
    rows = [s.as_dict() for s in stats]
    for row in rows:
        row["drained"] = finished.get(row["plugin"], True)
    report = {
        "experiment": experiment.name if experiment else None,
        "written_at": time.time(),
        "drain_seconds": round(drain_seconds, 3),
        "skipped_replayed_results": skipped_replays,
        "late_trial_logs": late_trial_logs,
        # local checkpoints that could not be pinned against Tune's deletion (already gone, or a failed link/copy).
        "unpinned_checkpoints": unpinned_checkpoints,
        "plugins": rows,
        **dict(extra or {}),
    }
    troubled = any(r["failed"] or r["dropped"] or not r["drained"] for r in rows)
    log = logger.warning if troubled else logger.info
    log("trackbridge: delivery report (drain took %.2fs)\n%s", drain_seconds, format_table(rows))
    try:
        # In the experiment directory, through the experiment's filesystem (local disk, S3, GCS, ...).
        path = experiment_files.write_text(experiment, file_name, json.dumps(report, indent=2))
    except Exception as exc:  # the storage's own errors (pyarrow raises OSError subclasses and others)
        logger.warning("trackbridge: could not write the delivery report: %s", exc)
        path = None
    if path is not None:
        report["path"] = experiment_files.uri(experiment, path)
    return report
