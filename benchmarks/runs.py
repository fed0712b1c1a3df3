"""One configuration, run once: its child started, its numbers collected, its stores read back.

``run_config`` runs a Tune configuration (``benchmarks.configs``, child ``benchmarks.workload``) or a
direct-write script (``direct-<tracker>``: the naive floor, ``fast-<tracker>``: the optimized floor; child
``benchmarks.direct_write``) in a fresh directory, samples its process tree's memory (``benchmarks.child``),
then checks every value each tracker stored with the tracker's own reader (``benchmarks.verify``). A run
whose child failed, whose plugin failed or dropped events, or whose stores miss a value is not ``passed``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

from benchmarks import configs, verify
from benchmarks.child import MIB, run_child
from benchmarks.direct_write import FAST_HOW, TRACKERS

#: The trackers of the direct-write floors, in the order their times are added up.
FLOOR_TRACKERS: tuple[str, ...] = TRACKERS


@dataclass
class RunResult:
    config: str
    trials: int
    results: int
    repeat: int
    ok: bool = False
    error: str | None = None
    fit_seconds: float | None = None
    loop_seconds: float | None = None
    drain_seconds: float | None = None
    stall_ms_median: float | None = None
    stall_ms_p99: float | None = None
    stall_ms_max: float | None = None
    callback_calls: int = 0
    driver_peak_mib: float = 0.0
    tracker_peak_mib: float = 0.0
    tracker_procs: int = 0
    tree_peak_mib: float = 0.0
    #: The deepest any TrackBridge plugin's queue got (``max_queue_depth`` of the delivery report; max over
    #: plugins); None without TrackBridge.
    queue_depth_max: int | None = None
    #: Ray nodes the run used (2: the sweep's ``--cluster``).
    nodes: int = 1
    checks: list[dict[str, Any]] = field(default_factory=list)
    child: dict[str, Any] = field(default_factory=dict)
    #: The in-trial case (``--in-trial-logs``): calls per result, and whether ``trackbridge.log`` was called
    #: (False: the baseline's do-nothing function in its place).
    in_trial_logs: int = 0
    in_trial_call: bool = False
    call_us_median: float | None = None
    call_us_p99: float | None = None
    first_call_ms: float | None = None
    later_call_ms_max: float | None = None
    share_of_trial: float | None = None
    trial_end_ms_median: float | None = None
    step_end_ms_total: float | None = None
    #: TrackBridge plugin -> seconds its worker thread spent inside hooks (``trackbridge_report.json``).
    plugin_busy: dict[str, float] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return all(c["complete"] for c in self.checks)

    @property
    def passed(self) -> bool:
        return self.ok and self.complete


def is_script(name: str) -> bool:
    """A direct-write floor (a plain script, no Tune): ``direct-<tracker>`` or ``fast-<tracker>``."""
    return name.startswith(("direct-", "fast-"))


def floor_names(args: argparse.Namespace) -> list[str]:
    """The direct-write scripts to run: the naive floor unless ``--no-direct``, the fast one unless ``--no-fast``."""
    names = [] if args.no_direct else [f"direct-{t}" for t in FLOOR_TRACKERS]
    return names + ([] if args.no_fast else [f"fast-{t}" for t in FLOOR_TRACKERS])


def label(name: str) -> str:
    """What a configuration or script means, for the tables."""
    if name.startswith("direct-"):
        return f"direct write, {name.removeprefix('direct-')} API, no Tune"
    if name.startswith("fast-"):
        tracker = name.removeprefix("fast-")
        return f"optimized direct write, {tracker}: {FAST_HOW[tracker]}, no Tune"
    return configs.CONFIGS[name].label


def _workload_argv(name: str, args: argparse.Namespace, in_trial_logs: int, in_trial_call: bool) -> list[str]:
    argv = ["-m", "benchmarks.workload", "--config", name, "--cpus", str(args.cpus)]
    argv += ["--checkpoint-every", str(args.checkpoint_every), "--work", str(args.work)]
    if getattr(args, "cluster_cpus", 0):
        argv += ["--cluster-cpus-per-node", str(args.cluster_cpus)]
    if in_trial_logs:
        argv += ["--in-trial-logs", str(in_trial_logs)] + ([] if in_trial_call else ["--no-in-trial-call"])
    return argv


def run_config(
    name: str,
    trials: int,
    results: int,
    repeat: int,
    args: argparse.Namespace,
    workdir: str,
    in_trial_logs: int = 0,
    in_trial_call: bool = True,
) -> RunResult:
    """One configuration, once, in a fresh child and a fresh directory; then its stores checked.

    ``in_trial_logs`` N > 0: the trainable makes N timed ``trackbridge.log`` calls per result (with
    ``in_trial_call`` False: N timed calls of a do-nothing function, the baseline)."""
    calls = bool(in_trial_logs) and in_trial_call
    tag = "" if not in_trial_logs else (f"-log{in_trial_logs}" if calls else f"-nolog{in_trial_logs}")
    root = os.path.join(workdir, f"{name}{tag}-{trials}x{results}-r{repeat}")
    os.makedirs(root)
    out_json = os.path.join(root, "result.json")
    if is_script(name):
        kind, tracker = name.split("-", 1)
        argv = ["-m", "benchmarks.direct_write", "--tracker", tracker] + (["--fast"] if kind == "fast" else [])
        trackers: tuple[str, ...] = (tracker,)
    else:
        argv = _workload_argv(name, args, in_trial_logs, in_trial_call)
        trackers = configs.CONFIGS[name].trackers
    argv += ["--root", root, "--trials", str(trials), "--results", str(results), "--metrics", str(args.metrics)]
    argv += ["--out", out_json]
    data, sampler, error = run_child(argv, out_json, os.path.join(root, "child.log"), args.timeout)
    r = RunResult(name, trials, results, repeat, child=data, in_trial_logs=in_trial_logs, in_trial_call=calls)
    r.nodes = data.get("nodes", 1)
    r.ok = bool(data.get("ok")) and error is None and not data.get("trial_errors")
    r.error = error or data.get("error") or ("; ".join(data.get("trial_errors") or []) or None)
    r.fit_seconds = data.get("fit_seconds")
    r.loop_seconds = data.get("loop_seconds")
    report = data.get("trackbridge_report") or {}
    r.drain_seconds = report.get("drain_seconds")
    for key in ("stall_ms_median", "stall_ms_p99", "stall_ms_max", "trial_end_ms_median"):
        setattr(r, key, data.get(key))
    r.callback_calls = data.get("callback_calls", 0)
    plugins = report.get("plugins") or []
    r.plugin_busy = {p["plugin"]: p.get("busy_seconds") for p in plugins}
    depths = [p["max_queue_depth"] for p in plugins if p.get("max_queue_depth") is not None]
    r.queue_depth_max = max(depths) if depths else None
    for plugin in plugins:
        if plugin.get("failed") or plugin.get("dropped") or plugin.get("disabled_reason"):
            fail(
                r,
                f"plugin {plugin['plugin']}: failed {plugin.get('failed')}, dropped {plugin.get('dropped')}"
                + (f", disabled: {plugin['disabled_reason']}" if plugin.get("disabled_reason") else "")
                + (f", errors {plugin.get('errors_by_hook')}" if plugin.get("errors_by_hook") else ""),
            )
    if in_trial_logs and r.ok:
        _in_trial_numbers(r, data, trials)
    if sampler is not None:
        r.driver_peak_mib = sampler.driver_peak / MIB
        r.tracker_peak_mib = sampler.tracker_peak / MIB
        r.tracker_procs = sampler.tracker_procs_peak
        r.tree_peak_mib = sampler.tree_peak / MIB
    for check in verify.check_all(trackers, root, trials, results, args.metrics, in_trial_logs if calls else 0):
        r.checks.append(check.as_dict())
    if calls and name == "tb-noop":
        r.checks.append(_noop_check(data, trials, results, in_trial_logs).as_dict())
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return r


def fail(r: RunResult, why: str) -> None:
    """Mark a run failed, keeping every earlier reason."""
    r.ok = False
    r.error = (r.error + "; " if r.error else "") + why


def _in_trial_numbers(r: RunResult, data: dict[str, Any], trials: int) -> None:
    """The in-trial figures of one run, from the child's JSON; a run whose timings are incomplete fails."""
    info = data.get("in_trial") or {}
    if info.get("trials_reporting") != trials or info.get("calls") != info.get("expected_calls"):
        fail(
            r,
            f"in-trial timings of {info.get('trials_reporting')}/{trials} trials, "
            f"{info.get('calls')}/{info.get('expected_calls')} calls",
        )
    late = (data.get("trackbridge_report") or {}).get("late_trial_logs")
    if late:
        fail(r, f"{late} in-trial values arrived after their trial ended (late_trial_logs)")
    r.call_us_median = info.get("call_us_median")
    r.call_us_p99 = info.get("call_us_p99")
    r.first_call_ms = info.get("first_call_ms_median")
    r.later_call_ms_max = info.get("later_call_ms_max")
    r.share_of_trial = info.get("share_of_trial_median")
    r.trial_end_ms_median = data.get("trial_end_ms_median")
    r.step_end_ms_total = data.get("step_end_ms_total")


def _noop_check(data: dict[str, Any], trials: int, results: int, logs: int) -> verify.TrackerCheck:
    """The do-nothing plugin stores nothing: its check is the values its in-trial hook received, per trial."""
    from benchmarks.workload import IN_TRIAL_METRICS

    per_trial = data.get("noop_trial_log_values") or {}
    expected_each = results * logs * IN_TRIAL_METRICS
    check = verify.TrackerCheck("noop", expected=trials * expected_each, kind="in-trial", expected_runs=trials)
    check.stored = sum(per_trial.values())
    check.valid = sum(min(n, expected_each) for n in per_trial.values())
    check.runs = len(per_trial)
    check.duplicates = sum(max(0, n - expected_each) for n in per_trial.values())
    if check.duplicates:
        check.problems.append(f"{check.duplicates} values received more than once")
    return check


def run_name(r: RunResult) -> str:
    """The configuration's name; in the in-trial case a TrackBridge run without calls is the reference."""
    return f"{r.config}:0" if r.in_trial_logs and not r.in_trial_call and r.config != "none" else r.config


def progress(r: RunResult) -> None:
    """One line per finished run: time, memory, values read back, status."""
    status = "ok" if r.passed else "FAILED"
    stored = (
        ", ".join(
            f"{c['tracker']}{' in-trial' if c.get('kind') == 'in-trial' else ''} {c['valid']}/{c['expected']}"
            + "".join(f" ({note})" for note in c.get("notes") or [])
            for c in r.checks
        )
        or "-"
    )
    fit = f"{r.fit_seconds:.2f}s" if r.fit_seconds is not None else "-"
    if r.in_trial_logs and r.call_us_median is not None:
        fit += (
            f" {'log' if r.in_trial_call else 'no-op'} call {r.call_us_median:.1f}/{r.call_us_p99:.1f} us (median/p99)"
        )
    if r.drain_seconds is not None:
        fit += f" (drain {r.drain_seconds:.2f}s)"
    if r.queue_depth_max is not None:
        fit += f" (queue depth {r.queue_depth_max})"
    print(
        f"  [{r.repeat + 1}] {run_name(r):<16} {r.trials}x{r.results}  fit {fit:>8}"
        f"  driver {r.driver_peak_mib:6.0f} MiB"
        f"  trackers {r.tracker_peak_mib:6.0f} MiB ({r.tracker_procs} procs)  stored: {stored}  {status}"
        + (f"  ({r.error[:200]})" if r.error else ""),
        flush=True,
    )


def run_interleaved(
    names: list[str], trials: int, results: int, args: argparse.Namespace, workdir: str
) -> dict[str, list[RunResult]]:
    """``args.repeats`` rounds of every name, interleaved (A B C ... A B C ...: drift on a shared machine hits
    all alike); the runs per name."""
    runs: dict[str, list[RunResult]] = {n: [] for n in names}
    for repeat in range(args.repeats):
        for name in names:
            r = run_config(name, trials, results, repeat, args, workdir)
            runs[name].append(r)
            progress(r)
    return runs
