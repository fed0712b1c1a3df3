"""Rows (one configuration's runs at one size), their medians, and the comparison's table.

Ratios in the tables name their baseline: fit() time against ``none`` (no callback passed to Tune), driver
memory against ``none-callback`` (a do-nothing ``ray.tune.Callback``: with any callback, Ray's usage
telemetry imports ``mlflow`` and ``wandb`` into the driver, so that is the fair memory baseline for a
callback). ``markdown`` and ``plain`` render any header and rows.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from benchmarks.runs import RunResult, is_script

#: The configuration the time ratios are against: no callback at all.
TIME_BASELINE = "none"
#: The configuration the driver-memory ratios are against: one do-nothing Tune callback.
MEMORY_BASELINE = "none-callback"

RATIO_NOTE = (
    f"Ratios: fit() time against `{TIME_BASELINE}` (no callback passed to Tune); driver peak RSS against "
    f"`{MEMORY_BASELINE}` (one do-nothing `ray.tune.Callback`: with any callback passed, Ray's usage telemetry "
    "imports `mlflow` and `wandb` into the driver, which no callback can avoid)."
)


def median(values: list[float | None]) -> float | None:
    """The median of the values present (None when there are none)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def short(tracker: str) -> str:
    return {"tensorboard": "tb"}.get(tracker, tracker)


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


@dataclass
class Row:
    """One configuration's runs at one size."""

    config: str
    label: str
    trials: int
    results: int
    runs: list[RunResult]

    @property
    def passed(self) -> bool:
        return bool(self.runs) and all(r.passed for r in self.runs)

    def median(self, attr: str) -> float | None:
        return median([getattr(r, attr) for r in self.runs])

    def max(self, attr: str) -> Any:
        present = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return max(present) if present else None

    @property
    def status(self) -> str:
        if self.passed:
            return "ok"
        failed = [r for r in self.runs if not r.passed]
        why = next((r.error for r in failed if r.error), None)
        if why is None:
            lost = [c for r in failed for c in r.checks if not c["complete"]]
            why = "lost values: " + ", ".join(
                f"{c['tracker']}{' in-trial' if c.get('kind') == 'in-trial' else ''} {c['valid']}/{c['expected']}"
                + (f" ({c['problems'][0]})" if c["problems"] else "")
                for c in lost[:3]
            )
        return f"FAILED {len(failed)}/{len(self.runs)}: {why}"

    def stored(self, kind: str = "results") -> str:
        """Per tracker, the fewest valid values any repeat stored, of those expected (``kind``: "results"
        or "in-trial"); with duplicates, how many at most."""
        by_tracker: dict[str, list[dict[str, Any]]] = {}
        for r in self.runs:
            for c in r.checks:
                if c.get("kind", "results") == kind:
                    by_tracker.setdefault(c["tracker"], []).append(c)
        parts = []
        for tracker, checks in by_tracker.items():
            worst = min(checks, key=lambda c: c["valid"])
            mark = "" if all(c["complete"] for c in checks) else " LOST"
            dup = max(c.get("duplicates", 0) for c in checks)
            mark += f" ({dup} duplicated)" if dup and kind == "in-trial" else ""
            notes = list(dict.fromkeys(note for c in checks for note in c.get("notes") or []))
            mark += f" ({'; '.join(notes)})" if notes else ""
            parts.append(f"{short(tracker)} {worst['valid']}/{worst['expected']}{mark}")
        return ", ".join(parts) or "-"

    def tracker_processes(self) -> str:
        """Median peak MiB of the tracker processes and their most at once: ``"41 (1)"``, or ``"0"``."""
        procs = self.max("tracker_procs") or 0
        return f"{self.median('tracker_peak_mib'):.0f} ({procs})" if procs else "0"


def rows_of(runs: dict[str, list[RunResult]], labels: dict[str, str], trials: int, results: int) -> list[Row]:
    """A row per name, in the order of ``runs``."""
    return [Row(name, labels[name], trials, results, runs[name]) for name in runs]


def baselines(rows: list[Row]) -> tuple[float | None, float | None]:
    """(fit() median of ``none``, driver peak median of ``none-callback``), None where absent."""
    by = {row.config: row for row in rows}
    fit = by[TIME_BASELINE].median("fit_seconds") if TIME_BASELINE in by else None
    mem = by[MEMORY_BASELINE].median("driver_peak_mib") if MEMORY_BASELINE in by else None
    return fit, mem


TABLE_COLUMNS = [
    "configuration",
    "fit() s",
    f"fit() x no tracking (`{TIME_BASELINE}`)",
    "drain s",
    "Tune thread per result ms (median / p99)",
    "driver peak MiB",
    f"driver peak x do-nothing callback (`{MEMORY_BASELINE}`)",
    "tracker processes peak MiB (count)",
    "plugin queue depth (max)",
    "values stored (min over repeats)",
    "status",
]

#: The ``--aim-comet`` table's extra column, after the per-result one: Tune's thread in ``on_trial_complete``.
TRIAL_END_COLUMN = "Tune thread at a trial's end ms (median)"


def table_columns(trial_end: bool = False) -> list[str]:
    columns = list(TABLE_COLUMNS)
    if trial_end:
        columns.insert(columns.index("Tune thread per result ms (median / p99)") + 1, TRIAL_END_COLUMN)
    return columns


def table_rows(rows: list[Row], trial_end: bool = False) -> list[list[str]]:
    """The comparison's rows, in ``table_columns(trial_end)`` order; the ratios against ``baselines(rows)``
    (none for a script without Tune: a ratio to a Tune run means nothing there)."""
    fit_base, mem_base = baselines(rows)
    out = []
    for row in rows:
        script = is_script(row.config)
        fit, driver = row.median("fit_seconds"), row.median("driver_peak_mib")
        ratio = fit / fit_base if fit is not None and fit_base and not script else None
        mem_ratio = driver / mem_base if driver and mem_base and not script else None
        med, p99 = row.median("stall_ms_median"), row.median("stall_ms_p99")
        out.append(
            [
                f"{row.label} (`{row.config}`)",
                fmt(fit),
                fmt(ratio) + "x" if ratio is not None else "-",
                fmt(row.median("drain_seconds")),
                "-" if med is None else f"{med:.3f} / {p99:.2f}",
                *([fmt(row.median("trial_end_ms_median"), ".0f")] if trial_end else []),
                fmt(driver, ".0f") + (" (script)" if script else ""),
                fmt(mem_ratio) + "x" if mem_ratio is not None else "-",
                row.tracker_processes(),
                fmt(row.max("queue_depth_max"), "d"),
                row.stored(),
                row.status,
            ]
        )
    return out


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def plain(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False))

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
