"""The result files: Markdown, CSV and raw JSON under ``benchmarks/results/`` (or ``--out-dir``).

Every file names the machine (``machine``: CPUs, RAM, Python, the versions of Ray and the trackers, the
load average at the start, the date) and the command that measured it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
from collections.abc import Iterable
from typing import Any

from benchmarks.child import REPO

RESULTS_DIR = os.path.join(REPO, "benchmarks", "results")

#: The per-run CSV of a comparison: one line per run.
RUN_FIELDS = [
    "config",
    "repeat",
    "trials",
    "results",
    "nodes",
    "ok",
    "fit_seconds",
    "loop_seconds",
    "drain_seconds",
    "stall_ms_median",
    "stall_ms_p99",
    "stall_ms_max",
    "trial_end_ms_median",
    "driver_peak_mib",
    "tracker_peak_mib",
    "tracker_procs",
    "tree_peak_mib",
    "queue_depth_max",
    "stored",
    "expected",
    "notes",
    "error",
]


def machine(extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The machine and the versions of Ray and the trackers (``extra``: more distributions to name)."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = None
    try:
        import psutil

        ram = psutil.virtual_memory().total / 1024**3
    except Exception:
        pass
    versions = {}
    for module in ("ray", "wandb", "mlflow", "tensorboardX", "tensorboard", *extra):
        try:
            from importlib.metadata import version

            versions[module] = version(module)
        except Exception:
            versions[module] = "?"
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(ram, 1) if ram else None,
        "python": platform.python_version(),
        "os": platform.platform(),
        "versions": versions,
        "load_average_at_start": os.getloadavg(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def machine_line(m: dict[str, Any]) -> str:
    v = ", ".join(f"{k} {val}" for k, val in m["versions"].items())
    return (
        f"{m['date']}; {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}; {v}; "
        f"load average at start {', '.join(f'{x:.1f}' for x in m['load_average_at_start'])}"
    )


def command(args: argparse.Namespace, module: str = "benchmarks.compare") -> str:
    """The command line that measured (``args.argv``: its arguments)."""
    return f"python -m {module} {' '.join(args.argv)}".rstrip()


def stem(args: argparse.Namespace, name: str) -> str:
    """``<out-dir>/<name>``, the directory created."""
    os.makedirs(args.out_dir, exist_ok=True)
    return os.path.join(args.out_dir, name)


def write_markdown(path_stem: str, lines: Iterable[str]) -> str:
    with open(path_stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path_stem + ".md"


def write_csv(path_stem: str, header: list[str], rows: Iterable[list[Any]]) -> None:
    with open(path_stem + ".csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def run_line(r: Any) -> list[Any]:
    """One run (``runs.RunResult``) as a line of ``RUN_FIELDS``."""
    values = {
        **{k: getattr(r, k) for k in RUN_FIELDS if hasattr(r, k)},
        "ok": r.passed,
        "driver_peak_mib": round(r.driver_peak_mib, 1),
        "tracker_peak_mib": round(r.tracker_peak_mib, 1),
        "tree_peak_mib": round(r.tree_peak_mib, 1),
        "stored": sum(c["valid"] for c in r.checks),
        "expected": sum(c["expected"] for c in r.checks),
        "notes": "; ".join(note for c in r.checks for note in c.get("notes") or []),
        "error": r.error or "",
    }
    return [values[k] for k in RUN_FIELDS]


def write_runs_csv(path_stem: str, rows: Iterable[Any]) -> None:
    """Every run of the rows (``tables.Row``), one line each."""
    write_csv(path_stem, RUN_FIELDS, [run_line(r) for row in rows for r in row.runs])


def write_json(path_stem: str, info: dict[str, Any], args: argparse.Namespace, rows: Any, **extra: Any) -> None:
    """The raw result file beside the tables: machine, arguments, ``extra``, every run."""
    with open(path_stem + ".json", "w", encoding="utf-8") as f:
        runs = [r.__dict__ for row in rows for r in row.runs]
        json.dump({"machine": info, "args": args.argv, **extra, "runs": runs}, f, indent=1, default=str)
