"""The scale sweep (``--sweep``): the same configurations at growing sizes, one table, one PNG.

At each size T x R (``--sizes``) the sweep's configurations (``configs.SWEEP_CONFIGS``: ``none``,
``none-callback``, ``tb-noop``, ``tb-all``, or ``--configs``) and the direct-write floors run interleaved,
``args.repeats`` times. On one Ray node by default (``--cpus`` logical CPUs: that many trials at once); with
``--cluster`` on a 2-node ``ray.cluster_utils.Cluster`` of ``--cluster-cpus-per-node`` logical CPUs each
(default 16: up to 32 trials at once), default sizes up to 32 concurrent trials.

Written as ``sweep`` (or ``sweep-cluster``): Markdown, CSV (one line per size and configuration, medians),
JSON (every run) and a PNG (``benchmarks.sweep_plot``): fit() ratio to ``none``, driver peak memory,
tracker processes (MiB and count), TrackBridge's plugin queue depth (``max_queue_depth`` of the delivery
report, max over plugins), Tune's thread per result, and the time added against the floors.
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.result_files import command, machine_line, stem, write_csv, write_json, write_markdown
from benchmarks.runs import FLOOR_TRACKERS, floor_names, is_script, label, run_interleaved
from benchmarks.sweep_plot import plot_sweep
from benchmarks.tables import MEMORY_BASELINE, RATIO_NOTE, TIME_BASELINE, Row, fmt, markdown, plain, rows_of

DEFAULT_SIZES = ((4, 50), (4, 200), (8, 500), (16, 1000))
FULL_SIZE = (16, 2000)
#: ``--cluster``'s default sizes: 4 to 32 trials at once on 2 nodes.
CLUSTER_SIZES = ((4, 200), (8, 200), (16, 200), (32, 200))

HEADER = [
    "T x R",
    "configuration",
    "fit() s",
    f"fit() x no tracking (`{TIME_BASELINE}`)",
    "drain s",
    "results/s",
    f"added to `{TIME_BASELINE}` s",
    "optimized floor s (sum of fast-*)",
    "added / optimized floor",
    "naive floor s (sum of direct-*)",
    "Tune thread per result ms (median / p99)",
    "driver peak MiB",
    f"driver peak x do-nothing callback (`{MEMORY_BASELINE}`)",
    "tracker processes MiB (count)",
    "plugin queue depth (max)",
    "status",
]


def _floor(here: dict[str, Row], kind: str) -> float | None:
    parts = [here[f"{kind}-{t}"].median("fit_seconds") if f"{kind}-{t}" in here else None for t in FLOOR_TRACKERS]
    return sum(p for p in parts if p is not None) if all(p is not None for p in parts) else None


def point(row: Row, here: dict[str, Row]) -> dict[str, Any]:
    """One size and configuration, as medians (a line of the CSV, a point of the plot)."""
    base = here[TIME_BASELINE].median("fit_seconds") if TIME_BASELINE in here else None
    mem_base = here[MEMORY_BASELINE].median("driver_peak_mib") if MEMORY_BASELINE in here else None
    fit, driver = row.median("fit_seconds"), row.median("driver_peak_mib")
    script = is_script(row.config)
    added = fit - base if fit is not None and base is not None and not script else None
    fast = _floor(here, "fast")
    return {
        "trials": row.trials,
        "results": row.results,
        "nodes": max((r.nodes for r in row.runs), default=1),
        "config": row.config,
        "fit": fit,
        "fit_ratio": fit / base if fit is not None and base and not script else None,
        "drain": row.median("drain_seconds"),
        "results_per_s": row.trials * row.results / fit if fit else None,
        "added": added,
        "fast_floor": fast,
        "added_per_fast_floor": added / fast if added is not None and fast else None,
        "direct_floor": _floor(here, "direct"),
        "stall_median": row.median("stall_ms_median"),
        "stall_p99": row.median("stall_ms_p99"),
        "driver_mib": driver,
        "driver_ratio": driver / mem_base if driver and mem_base and not script else None,
        "tracker_mib": row.median("tracker_peak_mib"),
        "tracker_procs": row.max("tracker_procs") or 0,
        "queue_depth": row.max("queue_depth_max"),
        "passed": row.passed,
    }


def _cells(p: dict[str, Any], row: Row) -> list[str]:
    subject = p["config"] == "tb-all"
    return [
        f"{p['trials']}x{p['results']}",
        p["config"],
        fmt(p["fit"]),
        fmt(p["fit_ratio"]) + "x" if p["fit_ratio"] is not None else "-",
        fmt(p["drain"]),
        fmt(p["results_per_s"], ",.0f"),
        fmt(p["added"]),
        fmt(p["fast_floor"]) if subject else "",
        fmt(p["added_per_fast_floor"]) if subject else "",
        fmt(p["direct_floor"]) if subject else "",
        "-" if p["stall_median"] is None else f"{p['stall_median']:.3f} / {p['stall_p99']:.2f}",
        fmt(p["driver_mib"], ".0f"),
        fmt(p["driver_ratio"]) + "x" if p["driver_ratio"] is not None else "-",
        row.tracker_processes(),
        fmt(p["queue_depth"], "d"),
        row.status,
    ]


def _where(args: argparse.Namespace) -> str:
    if args.cluster_cpus:
        return (
            f"a 2-node ray.cluster_utils.Cluster on this machine, {args.cluster_cpus} logical CPUs per node "
            f"(up to {2 * args.cluster_cpus} trials at once)"
        )
    return f"one Ray node, {args.cpus} logical CPUs"


def sweep(args: argparse.Namespace, workdir: str, info: dict[str, Any]) -> str:
    """Run the sweep, print its table, write its files; returns the Markdown's path."""
    sizes = list(args.sizes)
    names = list(args.configs) + floor_names(args)
    print(
        f"sweep on {_where(args)}: sizes {', '.join(f'{t}x{r}' for t, r in sizes)}; configurations "
        f"{', '.join(names)}; {args.repeats} repeats",
        flush=True,
    )
    rows: list[Row] = []
    for trials, results in sizes:
        runs = run_interleaved(names, trials, results, args, workdir)
        rows += rows_of(runs, {n: label(n) for n in names}, trials, results)
    body, points = [], []
    for trials, results in sizes:
        here = {row.config: row for row in rows if (row.trials, row.results) == (trials, results)}
        for row in here.values():
            points.append(point(row, here))
            body.append(_cells(points[-1], row))
    print()
    print(plain(HEADER, body))
    name = "sweep-cluster" if args.cluster_cpus else "sweep"
    path = stem(args, name)
    write_markdown(
        path,
        [
            f"# Scale sweep{' on 2 nodes' if args.cluster_cpus else ''}",
            "",
            f"Machine: {machine_line(info)}.",
            "",
            f"On {_where(args)}; {args.metrics} metrics per result, checkpoint every {args.checkpoint_every} "
            f"steps, {args.repeats} repeat(s), medians. Command: `{command(args)}`",
            "",
            RATIO_NOTE + " Floors: the sum of the three direct-write scripts' times (no Tune), optimized "
            "(`fast-*`) and naive (`direct-*`); added: `tb-all` minus `none`. Queue depth: the deepest any "
            "TrackBridge plugin's queue got (`max_queue_depth`, max over plugins and repeats).",
            "",
            markdown(HEADER, body),
            "",
            f"![sweep]({name}.png)",
        ],
    )
    write_csv(path, list(points[0]), [list(p.values()) for p in points])
    write_json(path, info, args, rows, points=points)
    plot_sweep(points, path + ".png", f"TrackBridge scale sweep on {_where(args)} ({args.metrics} metrics per result)")
    print(f"\nwritten: {path}.md, .csv, .json, .png")
    return path + ".md"
