"""The in-trial case (``--in-trial-logs N``): what ``trackbridge.log`` from inside trials costs.

The trainable calls ``trackbridge.log`` (3 floats) N times before each ``tune.report``, timing each call on
the worker (``benchmarks.workload``). The baseline, ``none``, runs the same trainable with a do-nothing
function in that slot (same loop, same dicts, same timer), with no callback; every TrackBridge configuration
makes the calls, and ``tb-all`` also runs once per repeat without them (``tb-all:0``, the reference; skipped
with ``--no-results-only``). Every stored in-trial point is read back too (a run that lost or duplicated one
is FAILED). Written as ``in-trial-TxRxN`` (Markdown, CSV, JSON); Ray's callbacks and the direct-write floors
do not take part (they receive nothing from ``trackbridge.log``).
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.result_files import command, machine_line, stem, write_csv, write_json, write_markdown
from benchmarks.runs import RunResult, label, progress, run_config
from benchmarks.tables import Row, fmt, markdown, median, plain, short
from benchmarks.workload import in_trial_names

IN_TRIAL_COLUMNS = [
    "configuration",
    "trackbridge.log calls per result",
    "fit() s",
    "fit() x `none` (no tracking)",
    "worker, per call us (median / p99)",
    "worker, first call ms (median) / slowest other call ms",
    "worker, share of trial time in the calls",
    "Tune thread at a trial's end ms (median)",
    "Tune thread in on_step_end ms (total)",
    "drain s",
    "plugin threads busy s",
    "results stored (min over repeats)",
    "in-trial values stored (min over repeats)",
    "status",
]

#: The per-run CSV of the in-trial case.
FIELDS = [
    "config",
    "in_trial_call",
    "repeat",
    "trials",
    "results",
    "in_trial_logs",
    "ok",
    "fit_seconds",
    "drain_seconds",
    "call_us_median",
    "call_us_p99",
    "first_call_ms",
    "later_call_ms_max",
    "share_of_trial",
    "trial_end_ms_median",
    "step_end_ms_total",
    "stall_ms_median",
    "stall_ms_p99",
    "driver_peak_mib",
    "results_stored",
    "results_expected",
    "in_trial_stored",
    "in_trial_expected",
    "in_trial_duplicates",
    "error",
]


IN_TRIAL_BASELINE = (
    "the same trainable, loop and dicts, with a do-nothing Python function called (and timed) in place of "
    "`trackbridge.log`; no callback, `trackbridge` never imported"
)


def in_trial(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """The in-trial case: (name, calls) variants interleaved per repeat; medians per variant."""
    n = args.in_trial_logs
    variants: list[tuple[str, bool]] = [("none", False)]
    variants += [(name, True) for name in args.configs if name != "none"]
    if "tb-all" in args.configs and not args.no_results_only:
        variants.append(("tb-all", False))
    T, R = args.trials, args.results
    print(
        f"in-trial logging: {T} trials x {R} results x {args.metrics} metrics, {n} trackbridge.log calls of "
        f"{len(in_trial_names())} floats per result, checkpoint every {args.checkpoint_every}, {args.repeats} "
        f"repeats, configurations interleaved",
        flush=True,
    )
    print(f"baseline (no tracking): {IN_TRIAL_BASELINE}", flush=True)
    runs: dict[tuple[str, bool], list[RunResult]] = {v: [] for v in variants}
    for repeat in range(args.repeats):
        for name, calls in variants:
            r = run_config(name, T, R, repeat, args, workdir, in_trial_logs=n, in_trial_call=calls)
            runs[(name, calls)].append(r)
            progress(r)
    rows = []
    for name, calls in variants:
        text = label(name)
        if name != "none" and not calls:
            text += ", no in-trial calls (reference)"
        rows.append(Row(name if calls or name == "none" else f"{name}:0", text, T, R, runs[(name, calls)]))
    baseline = next((row.median("fit_seconds") for row in rows if row.config == "none"), None)
    return {"rows": rows, "baseline": baseline}


def in_trial_rows(rows: list[Row], baseline: float | None, logs: int) -> list[list[str]]:
    out = []
    for row in rows:
        fit = row.median("fit_seconds")
        ratio = fit / baseline if fit is not None and baseline else None
        called = all(r.in_trial_call for r in row.runs)
        med, p99 = row.median("call_us_median"), row.median("call_us_p99")
        first, later = row.median("first_call_ms"), row.median("later_call_ms_max")
        share = row.median("share_of_trial")
        calls = str(logs) if called else f"0 ({logs} do-nothing calls)"
        out.append(
            [
                f"{row.label} (`{row.config}`)",
                calls,
                fmt(fit),
                fmt(ratio, ".2f") + "x" if ratio is not None else "-",
                "-" if med is None else f"{med:.1f} / {p99:.1f}",
                "-" if first is None or not called else f"{first:.1f} / {later:.1f}",
                "-" if share is None else f"{share * 100:.1f} %",
                fmt(row.median("trial_end_ms_median"), ".0f"),
                fmt(row.median("step_end_ms_total"), ".0f"),
                fmt(row.median("drain_seconds")),
                _busy(row),
                row.stored("results"),
                row.stored("in-trial") if called else "-",
                row.status,
            ]
        )
    return out


def _busy(row: Row) -> str:
    """Per plugin, the median over repeats of the time its worker thread spent in hooks."""
    plugins = dict.fromkeys(p for r in row.runs for p in r.plugin_busy)
    parts = []
    for plugin in plugins:
        busy = median([r.plugin_busy.get(plugin) for r in row.runs])
        parts.append(f"{short(plugin)} {fmt(busy, '.1f')}")
    return ", ".join(parts) or "-"


def write_in_trial(result: dict[str, Any], args: argparse.Namespace, info: dict[str, Any]) -> str:
    rows: list[Row] = result["rows"]
    n = args.in_trial_logs
    body = in_trial_rows(rows, result["baseline"], n)
    setup = (
        f"{args.trials} trials x {args.results} results x {args.metrics} metrics, {n} `trackbridge.log` calls of "
        f"{len(in_trial_names())} floats before each result ({args.trials * args.results * n} calls per run), "
        f"checkpoint every {args.checkpoint_every}, {args.cpus} Ray CPUs; {args.repeats} repeats, "
        f"configurations interleaved; medians"
    )
    print()
    print(setup)
    print(plain(IN_TRIAL_COLUMNS, body))
    path = stem(args, f"in-trial-{args.trials}x{args.results}x{n}")
    md = [
        f"# Logging from inside trials: {args.trials} trials x {args.results} results x {n} in-trial calls",
        "",
        f"Machine: {machine_line(info)}.",
        "",
        f"{setup}. Command: `{command(args)}`",
        "",
        f"Baseline, no tracking: {IN_TRIAL_BASELINE}. Every other row calls `trackbridge.log` in that slot, "
        "except the reference row (`tb-all:0`): the baseline's trainable under `tb-all`, results tracked, no "
        f"in-trial calls. Expected in-trial values per tracker: trials x results x calls x {len(in_trial_names())}.",
        "",
        markdown(IN_TRIAL_COLUMNS, body),
        "",
        "Worker columns: `time.perf_counter()` around each call in the trainable, median and p99 over all calls "
        "of all trials of a run, then the median over repeats; the first call of each trial (finds the inbox "
        "actor, registers its sender) is in those numbers and also shown alone. Tune thread: time inside the "
        "TrackBridge callback's `on_trial_complete` (waits for the trial's in-trial values) and `on_step_end` "
        "(hands them to the plugins). Plugin threads busy: per plugin, the wall time its worker thread spent inside "
        "hooks (TrackBridge's delivery report); these threads run in the driver process, next to Tune's loop. "
        "Stored: every (run, metric, step) read back from each tracker with its "
        "own reader (in-trial: MLflow metric history, TensorBoard scalars at global_step, W&B rows at "
        "`trial_step`); for the do-nothing plugin, the values its in-trial hook received.",
    ]
    write_markdown(path, md)
    lines = []
    for row in rows:
        for r in row.runs:
            res = [c for c in r.checks if c.get("kind", "results") == "results"]
            inn = [c for c in r.checks if c.get("kind") == "in-trial"]
            values = {
                **{k: getattr(r, k) for k in FIELDS if hasattr(r, k)},
                "ok": r.passed,
                "driver_peak_mib": round(r.driver_peak_mib, 1),
                "results_stored": sum(c["valid"] for c in res),
                "results_expected": sum(c["expected"] for c in res),
                "in_trial_stored": sum(c["valid"] for c in inn),
                "in_trial_expected": sum(c["expected"] for c in inn),
                "in_trial_duplicates": sum(c.get("duplicates", 0) for c in inn),
                "error": r.error or "",
            }
            lines.append([values[k] for k in FIELDS])
    write_csv(path, FIELDS, lines)
    write_json(path, info, args, rows, baseline=IN_TRIAL_BASELINE)
    print(f"\nwritten: {path}.md, .csv, .json")
    return path + ".md"
