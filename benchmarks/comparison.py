"""The side-by-side comparison at one size: every configuration and floor interleaved, the table, the files.

``compare`` runs the given configurations and direct-write scripts ``args.repeats`` times, interleaved
(``benchmarks.runs``), and, if asked, the bridge alone (``benchmarks.bridge_overhead``, in a child).
``write_compare`` prints the table and writes ``compare-TxR`` (or ``compare-aim-comet-TxR``) as Markdown,
CSV (one line per run) and JSON (every run), with the goals when given; when both isolation rows
(``tb-all-threads``, ``tb-all-isolated``) were measured it also writes ``isolation-TxR``: those rows beside
``none``, ``none-callback`` and ``tb-all``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from benchmarks import goals as goals_mod
from benchmarks.child import run_child
from benchmarks.result_files import (
    command,
    machine_line,
    stem,
    write_json,
    write_markdown,
    write_runs_csv,
)
from benchmarks.runs import label, run_interleaved
from benchmarks.tables import RATIO_NOTE, Row, markdown, plain, rows_of, table_columns, table_rows

#: The bridge alone's size (``--quick``: 2 x 50).
BRIDGE_SIZE = (16, 2000)
#: The rows of the ``isolate=`` file, when both isolation rows were measured.
ISOLATION_CONFIGS = ("none", "none-callback", "tb-all", "tb-all-threads", "tb-all-isolated")

AIM_COMET_NOTE = (
    "Baseline, no tracking: the same trainable and Tune run (same trials, results, metrics and checkpoints, "
    "`TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1`) with no callback passed: no tracker imported. Ray's callbacks run "
    "with Ray's defaults: `AimLoggerCallback(repo=...)` "
    "(Aim's own defaults: system metrics every 10 s and terminal capture on) and `CometLoggerCallback(online=False, "
    "offline_directory=...)` (Ray turns off Comet's output capture, git and CPU/GPU logging; Comet's code, package, "
    "host logging and CLI-argument parsing stay on). TrackBridge's plugins run with theirs: `{'aim': {'repo': ...}}` "
    "and `{'comet': {'mode': 'offline', 'offline_directory': ...}}`. Tune thread per result: time inside the "
    "callback's `on_trial_result`; at a trial's end: inside its `on_trial_complete` (median over a run's trials). "
    "Stored: every (run, metric, step) with its value, read back with the tracker's "
    "own reader: Aim's `Repo.iter_runs()` and `run.metrics()`; Comet's offline archives (`messages.json`, every "
    "`metric_msg`). Aim shows a run only once it is in the repo's index: when the index shows fewer runs than the "
    "repo holds, the repo is reindexed with `aim storage reindex` before it is read (noted in the row)."
)


def compare(
    args: argparse.Namespace,
    workdir: str,
    names: list[str],
    trials: int,
    results: int,
    bridge: bool,
    title: str = "comparison",
) -> dict[str, Any]:
    """Run ``names`` (configurations and ``direct-``/``fast-`` scripts) at ``trials`` x ``results``; with
    ``bridge``, the bridge alone too. Returns the rows, the bridge's numbers and the size."""
    print(
        f"{title}: {trials} trials x {results} results x {args.metrics} metrics, checkpoint every "
        f"{args.checkpoint_every}, {args.cpus} Ray CPUs, {args.repeats} repeats, configurations interleaved: "
        f"{', '.join(names)}",
        flush=True,
    )
    runs = run_interleaved(names, trials, results, args, workdir)
    measured = bridge_alone(args, workdir) if bridge else None
    rows = rows_of(runs, {n: label(n) for n in names}, trials, results)
    return {"rows": rows, "bridge": measured, "trials": trials, "results": results}


def bridge_alone(args: argparse.Namespace, workdir: str) -> dict[str, Any] | None:
    """``benchmarks.bridge_overhead`` in a child: results/s into a do-nothing plugin, without Ray."""
    trials, results = (2, 50) if args.quick else BRIDGE_SIZE
    out_json = os.path.join(workdir, f"bridge-{trials}x{results}.json")
    argv = ["-m", "benchmarks.bridge_overhead", "--trials", str(trials), "--results", str(results)]
    argv += ["--metrics", str(args.metrics), "--json", out_json]
    data, _, error = run_child(argv, out_json, out_json + ".log", args.timeout)
    if error:
        print(f"bridge alone: FAILED ({error})")
        return {"error": error}
    print(
        f"bridge alone, outside Tune ({trials} x {results} results x {args.metrics} metrics into a do-nothing plugin): "
        f"{data['results_per_second_delivered']:,.0f} results/s delivered, caller's thread "
        f"{data['stall_ms_median']:.4f} ms median / {data['stall_ms_p99']:.4f} ms p99 per result, "
        f"all delivered: {data['complete']}",
        flush=True,
    )
    return data


def _bridge_line(bridge: dict[str, Any]) -> str:
    return (
        f"Bridge alone, outside Tune ({bridge['trials']} x {bridge['results']} results into a do-nothing "
        f"plugin): {bridge['results_per_second_delivered']:,.0f} results/s delivered; the caller's thread "
        f"spends {bridge['stall_ms_median'] * 1000:.1f} us median, {bridge['stall_ms_p99'] * 1000:.1f} us p99 "
        f"per result."
    )


def _setup(args: argparse.Namespace, trials: int, results: int) -> str:
    return (
        f"{trials} trials x {results} results x {args.metrics} metrics, checkpoint every {args.checkpoint_every} "
        f"steps, Ray given {args.cpus} logical CPUs; {args.repeats} repeats, configurations interleaved; medians"
    )


def write_table(
    name: str,
    title: str,
    rows: list[Row],
    args: argparse.Namespace,
    info: dict[str, Any],
    notes: list[str] | None = None,
    goals: list[goals_mod.Goal] | None = None,
    echo: bool = True,
    **extra: Any,
) -> str:
    """Print (``echo``) and write one comparison table as ``<out-dir>/<name>`` .md, .csv, .json."""
    trials, results = rows[0].trials, rows[0].results
    trial_end = bool(args.aim_comet)
    columns, body = table_columns(trial_end), table_rows(rows, trial_end)
    if echo:
        print()
        print(_setup(args, trials, results))
        print(plain(columns, body))
        print(RATIO_NOTE)
    path = stem(args, name)
    md = [f"# {title}", "", f"Machine: {machine_line(info)}.", ""]
    md += [f"{_setup(args, trials, results)}. Command: `{command(args)}`", "", RATIO_NOTE, "", markdown(columns, body)]
    for note in notes or []:
        md += ["", note]
    if goals:
        md += ["", *goals_mod.markdown_section(goals)]
    write_markdown(path, md)
    write_runs_csv(path, rows)
    json_extra = {**extra, **({"goals": goals_mod.as_dicts(goals)} if goals else {})}
    write_json(path, info, args, rows, **json_extra)
    print(f"written: {path}.md, .csv, .json", flush=True)
    return path + ".md"


def write_compare(
    result: dict[str, Any],
    args: argparse.Namespace,
    info: dict[str, Any],
    goals: list[goals_mod.Goal] | None = None,
    echo: bool = True,
) -> str:
    """The comparison's files (and the isolation file when both isolation rows are there)."""
    rows: list[Row] = result["rows"]
    trials, results = result["trials"], result["results"]
    notes = [AIM_COMET_NOTE] if args.aim_comet else []
    bridge = result.get("bridge")
    if bridge and "error" not in bridge:
        notes.append(_bridge_line(bridge))
    name = f"{'compare-aim-comet' if args.aim_comet else 'compare'}-{trials}x{results}"
    what = "TrackBridge vs Ray's logger callbacks" + (": Aim and Comet" if args.aim_comet else "")
    title = f"{what}: {trials} trials x {results} results x {args.metrics} metrics"
    path = write_table(name, title, rows, args, info, notes, goals, echo, bridge=bridge)
    by = {row.config: row for row in rows}
    if "tb-all-threads" in by and "tb-all-isolated" in by:
        iso = [by[n] for n in ISOLATION_CONFIGS if n in by]
        title = f"TrackBridge `isolate=`: plugins on threads vs in processes, {trials} trials x {results} results"
        note = (
            "`tb-all`: the callback's default `isolate=`; `tb-all-threads`: `isolate=False` (plugins on threads of "
            "the driver); `tb-all-isolated`: `isolate=True` (each plugin in a process of its own). The same runs "
            f"as `compare-{trials}x{results}`."
        )
        write_table(f"isolation-{trials}x{results}", title, iso, args, info, [note], echo=False)
    return path
