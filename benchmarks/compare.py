"""TrackBridge against Ray's own logger callbacks, side by side, on this machine, in one command.

    python -m benchmarks.compare                      # 4 trials x 200 results x 12 metrics, 3 repeats
    python -m benchmarks.compare --quick              # a smoke run: 2 x 20, 1 repeat
    python -m benchmarks.compare --configs none,tb-all,native-all --repeats 5
    python -m benchmarks.compare --sweep              # scale sweep 4x50 .. 16x1000 (+ --full: 16x2000)
    python -m benchmarks.compare --in-trial-logs 10 --cpus 2   # trackbridge.log from inside trials
    python -m benchmarks.compare --aim-comet          # Ray's Aim and Comet callbacks vs TrackBridge's plugins

What it does, per configuration (see ``benchmarks/configs.py`` for the list):

1. runs the same Tune workload (``benchmarks/workload.py``: T trials x R results of 12 floats, a checkpoint
   every K steps) in a fresh child process with a fresh Ray instance and fresh tracker stores, the
   configurations interleaved (A B C A B C ...), and reports medians over the repeats;
2. samples the memory (RSS) of the child's whole process tree while it runs: the driver itself, and the
   processes the trackers start (wandb-core, Ray's per-trial W&B logging actors and their queue actors);
3. reads back what each tracker stored (``benchmarks/verify.py``) and marks a configuration that lost
   values as FAILED, whatever its speed;
4. measures the bridge alone (``benchmarks/bridge_overhead.py``) and the direct-write floor
   (``benchmarks/direct_write.py``: each tracker's own API, serially, outside Tune);
5. prints the table and writes it (Markdown, CSV, raw JSON) under ``benchmarks/results/``; ``--sweep``
   also draws a PNG.

``--in-trial-logs N`` measures logging from inside trials instead: the trainable calls ``trackbridge.log``
(3 floats) N times before each ``tune.report``, timing each call on the worker. The baseline, "no tracking",
runs the same trainable with a do-nothing function in place of ``trackbridge.log`` (same loop, same dicts,
same timer); every TrackBridge configuration (default: the do-nothing plugin, each tracker alone, all three)
makes the calls, and ``tb-all`` also runs once per repeat without them (``--no-results-only`` skips that
reference). Every stored in-trial point is read back too (a run that lost or duplicated one is FAILED), and
the table shows the end-to-end ratio to no tracking, the worker-side cost per call (median, p99) and the
values stored. Written as ``in-trial-TxRxN`` (Markdown, CSV, JSON); Ray's callbacks and the direct-write
floor do not take part (they receive nothing from ``trackbridge.log``).

``--aim-comet`` runs the same comparison for Aim and Comet instead (``configs.AIM_COMET_CONFIGS``: no tracking,
Ray's ``AimLoggerCallback`` and ``CometLoggerCallback`` offline, TrackBridge's ``aim`` and ``comet`` plugins),
without the direct-write floor and the bridge-alone measurement (both are about the other trackers), written
as ``compare-aim-comet-TxR``. Aim's runs are read with ``aim.Repo``; a repo whose index does not show every run
is reindexed first (``aim storage reindex``), and the table says so (Ray's callback indexes none).

A broken configuration (a plugin that raises, a child that crashes or times out) is a FAILED row, never a
crashed benchmark. The machine is shared and small: numbers move; read ratios, not absolute seconds.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks import configs, verify
from benchmarks.workload import CHILD_ENV, NUM_METRICS, in_trial_names

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO, "benchmarks", "results")
DEFAULT_SIZES = ((4, 50), (4, 200), (8, 500), (16, 1000))
FULL_SIZE = (16, 2000)
MIB = 1024 * 1024


# ============================================================================================ memory
def is_tracker_process(name: str, cmdline: list[str]) -> bool:
    """Processes a tracker started: wandb-core, a TrackBridge plugin process (``isolate=``), or a Ray worker
    now hosting Ray's W&B logging actor or the queue actor it feeds (Ray names a worker's process after the
    actor it runs: ``ray::<Class>.<method>``)."""
    if "wandb" in name.lower():
        return True
    if "trackbridge.process_transport" in " ".join(cmdline):
        return True
    title = cmdline[0] if cmdline else ""
    return title.startswith("ray::") and ("Wandb" in title or "_QueueActor" in title)


class TreeSampler(threading.Thread):
    """Samples the RSS of a process and all its descendants every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True, name="tree-sampler")
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.interval = interval
        self._halt = threading.Event()
        self.driver_peak = 0
        self.tracker_peak = 0
        self.tracker_procs_peak = 0
        self.tree_peak = 0
        self.samples = 0
        #: every descendant seen (pid -> create_time), to clean up what the child left behind
        self.seen: dict[int, float] = {}

    def run(self) -> None:
        psutil = self._psutil
        while not self._halt.is_set():
            try:
                procs = [self.root] + self.root.children(recursive=True)
            except psutil.Error:
                break
            driver = trackers = tree = 0
            count = 0
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                    if proc.pid == self.root.pid:
                        driver = rss
                    else:
                        self.seen.setdefault(proc.pid, proc.create_time())
                        if is_tracker_process(proc.name(), proc.cmdline()):
                            trackers += rss
                            count += 1
                    tree += rss
                except psutil.Error:
                    continue
            self.samples += 1
            self.driver_peak = max(self.driver_peak, driver)
            self.tracker_peak = max(self.tracker_peak, trackers)
            self.tracker_procs_peak = max(self.tracker_procs_peak, count)
            self.tree_peak = max(self.tree_peak, tree)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def leftovers(self) -> list[Any]:
        """Descendants of the child still alive after it exited (same pid *and* start time: ours)."""
        alive = []
        for pid, created in self.seen.items():
            try:
                proc = self._psutil.Process(pid)
                if proc.create_time() == created:
                    alive.append(proc)
            except self._psutil.Error:
                continue
        return alive


# ============================================================================================ one run
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


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(CHILD_ENV)
    env.pop("WANDB_API_KEY", None)
    env.pop("COMET_API_KEY", None)  # offline everywhere
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)
    # Ray's workers import the trainable by module name: let them find ``benchmarks``.
    env["PYTHONPATH"] = os.pathsep.join([REPO] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def run_child(
    argv: list[str], out_json: str, log_path: str, timeout: float
) -> tuple[dict[str, Any], TreeSampler | None, str | None]:
    """Run one child (``python -m ...``) with its tree sampled; returns its JSON, the sampler, an error."""
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=os.path.dirname(out_json),
            env=_child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        sampler = None
        try:
            sampler = TreeSampler(proc.pid)
            sampler.start()
        except Exception:  # the child may already be gone
            sampler = None
        error = None
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            error = f"timed out after {timeout:.0f}s"
            _kill_tree(proc.pid)
            proc.wait(30)
        if sampler is not None:
            sampler.stop()
    # Whatever the child started and left running (a Ray process or a wandb-core that outlived it).
    if sampler is not None:
        deadline = time.monotonic() + 10
        while sampler.leftovers() and time.monotonic() < deadline:
            time.sleep(0.5)
        for leftover in sampler.leftovers():
            try:
                print(f"    killing leftover process {leftover.pid} ({leftover.name()}) of the child", flush=True)
                leftover.kill()
            except Exception:
                pass
    data: dict[str, Any] = {}
    if os.path.exists(out_json):
        with open(out_json, encoding="utf-8") as f:
            data = json.load(f)
    elif error is None:
        error = f"child exited with code {proc.returncode} without a result (see {log_path})"
    return data, sampler, error


def _kill_tree(pid: int) -> None:
    """Kill a timed-out child and everything it started (ours: found from its own pid)."""
    import psutil

    try:
        root = psutil.Process(pid)
        for child in root.children(recursive=True):
            child.kill()
        root.kill()
    except psutil.Error:
        pass


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
    if name.startswith("direct-"):
        tracker = name.removeprefix("direct-")
        argv = ["-m", "benchmarks.direct_write", "--tracker", tracker]
        trackers: tuple[str, ...] = (tracker,)
    else:
        argv = [
            "-m",
            "benchmarks.workload",
            "--config",
            name,
            "--cpus",
            str(args.cpus),
            "--checkpoint-every",
            str(args.checkpoint_every),
            "--work",
            str(args.work),
        ]
        if in_trial_logs:
            argv += ["--in-trial-logs", str(in_trial_logs)] + ([] if in_trial_call else ["--no-in-trial-call"])
        trackers = configs.CONFIGS[name].trackers
    argv += [
        "--root",
        root,
        "--trials",
        str(trials),
        "--results",
        str(results),
        "--metrics",
        str(args.metrics),
        "--out",
        out_json,
    ]
    data, sampler, error = run_child(argv, out_json, os.path.join(root, "child.log"), args.timeout)
    r = RunResult(name, trials, results, repeat, child=data, in_trial_logs=in_trial_logs, in_trial_call=calls)
    r.ok = bool(data.get("ok")) and error is None and not data.get("trial_errors")
    r.error = error or data.get("error") or ("; ".join(data.get("trial_errors") or []) or None)
    r.fit_seconds = data.get("fit_seconds")
    r.loop_seconds = data.get("loop_seconds")
    report = data.get("trackbridge_report") or {}
    r.drain_seconds = report.get("drain_seconds")
    for key in ("stall_ms_median", "stall_ms_p99", "stall_ms_max", "trial_end_ms_median"):
        setattr(r, key, data.get(key))
    r.callback_calls = data.get("callback_calls", 0)
    r.plugin_busy = {p["plugin"]: p.get("busy_seconds") for p in report.get("plugins") or []}
    for plugin in report.get("plugins") or []:
        if plugin.get("failed") or plugin.get("dropped") or plugin.get("disabled_reason"):
            r.ok = False
            r.error = (r.error + "; " if r.error else "") + (
                f"plugin {plugin['plugin']}: failed {plugin.get('failed')}, dropped {plugin.get('dropped')}"
                + (f", disabled: {plugin['disabled_reason']}" if plugin.get("disabled_reason") else "")
                + (f", errors {plugin.get('errors_by_hook')}" if plugin.get("errors_by_hook") else "")
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


def _fail(r: RunResult, why: str) -> None:
    r.ok = False
    r.error = (r.error + "; " if r.error else "") + why


def _in_trial_numbers(r: RunResult, data: dict[str, Any], trials: int) -> None:
    """The in-trial figures of one run, from the child's JSON; a run whose timings are incomplete fails."""
    info = data.get("in_trial") or {}
    if info.get("trials_reporting") != trials or info.get("calls") != info.get("expected_calls"):
        _fail(
            r,
            f"in-trial timings of {info.get('trials_reporting')}/{trials} trials, "
            f"{info.get('calls')}/{info.get('expected_calls')} calls",
        )
    late = (data.get("trackbridge_report") or {}).get("late_trial_logs")
    if late:
        _fail(r, f"{late} in-trial values arrived after their trial ended (late_trial_logs)")
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


def _run_name(r: RunResult) -> str:
    """The configuration's name; in the in-trial case a TrackBridge run without calls is the reference."""
    return f"{r.config}:0" if r.in_trial_logs and not r.in_trial_call and r.config != "none" else r.config


def _progress(r: RunResult) -> None:
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
    print(
        f"  [{r.repeat + 1}] {_run_name(r):<15} {r.trials}x{r.results}  fit {fit:>8}  driver {r.driver_peak_mib:6.0f} MiB"
        f"  trackers {r.tracker_peak_mib:6.0f} MiB ({r.tracker_procs} procs)  stored: {stored}  {status}"
        + (f"  ({r.error[:200]})" if r.error else ""),
        flush=True,
    )


# ============================================================================================ summaries
def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


@dataclass
class Row:
    config: str
    label: str
    trials: int
    results: int
    runs: list[RunResult]

    @property
    def passed(self) -> bool:
        return bool(self.runs) and all(r.passed for r in self.runs)

    def median(self, attr: str) -> float | None:
        return _median([getattr(r, attr) for r in self.runs])

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
            parts.append(f"{_short(tracker)} {worst['valid']}/{worst['expected']}{mark}")
        return ", ".join(parts) or "-"


def _short(tracker: str) -> str:
    return {"tensorboard": "tb"}.get(tracker, tracker)


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


TABLE_COLUMNS = [
    "configuration",
    "fit() s",
    "x no tracking",
    "drain s",
    "Tune thread per result ms (median / p99)",
    "driver peak MiB",
    "tracker processes peak MiB (count)",
    "values stored (min over repeats)",
    "status",
]


#: The ``--aim-comet`` table's extra column, after the per-result one: Tune's thread in ``on_trial_complete``.
TRIAL_END_COLUMN = "Tune thread at a trial's end ms (median)"


def table_rows(rows: list[Row], baseline: float | None, trial_end: bool = False) -> list[list[str]]:
    """The comparison's rows (``trial_end``: with ``TRIAL_END_COLUMN`` after the per-result column)."""
    out = []
    for row in rows:
        fit = row.median("fit_seconds")
        # a ratio to a Tune run means nothing for a script without Tune
        ratio = fit / baseline if fit is not None and baseline and not row.config.startswith("direct-") else None
        med, p99 = row.median("stall_ms_median"), row.median("stall_ms_p99")
        stall = "-" if med is None else f"{med:.3f} / {p99:.2f}"
        procs = max((r.tracker_procs for r in row.runs), default=0)
        tracker_mib = row.median("tracker_peak_mib")
        out.append(
            [
                f"{row.label} (`{row.config}`)",
                _fmt(fit),
                _fmt(ratio, ".2f") + "x" if ratio is not None else "-",
                _fmt(row.median("drain_seconds")),
                stall,
                *([_fmt(row.median("trial_end_ms_median"), ".0f")] if trial_end else []),
                _fmt(row.median("driver_peak_mib"), ".0f")
                if not row.config.startswith("direct-")
                else _fmt(row.median("driver_peak_mib"), ".0f") + " (script)",
                f"{tracker_mib:.0f} ({procs})" if procs else "0",
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
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


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


# ============================================================================================ comparison
def compare(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    names = list(args.configs)
    direct = [] if args.no_direct else [f"direct-{t}" for t in ("mlflow", "tensorboard", "wandb")]
    runs: dict[str, list[RunResult]] = {n: [] for n in names + direct}
    T, R = args.trials, args.results
    print(
        f"comparison: {T} trials x {R} results x {args.metrics} metrics, checkpoint every {args.checkpoint_every}, "
        f"{args.repeats} repeats, configurations interleaved",
        flush=True,
    )
    for repeat in range(args.repeats):
        for name in names + direct:  # A B C ... A B C ...: drift on a shared machine hits all alike
            r = run_config(name, T, R, repeat, args, workdir)
            runs[name].append(r)
            _progress(r)
    bridge = None if args.no_bridge else bridge_alone(args, workdir)
    rows = [Row(n, _label(n), T, R, runs[n]) for n in names + direct]
    baseline = next((row.median("fit_seconds") for row in rows if row.config == "none"), None)
    return {"rows": rows, "baseline": baseline, "bridge": bridge}


def _label(name: str) -> str:
    if name.startswith("direct-"):
        return f"direct write, {name.removeprefix('direct-')} API, no Tune"
    return configs.CONFIGS[name].label


def bridge_alone(args: argparse.Namespace, workdir: str) -> dict[str, Any] | None:
    trials, results = (2, 50) if args.quick else FULL_SIZE
    out_json = os.path.join(workdir, f"bridge-{trials}x{results}.json")
    argv = [
        "-m",
        "benchmarks.bridge_overhead",
        "--trials",
        str(trials),
        "--results",
        str(results),
        "--metrics",
        str(args.metrics),
        "--json",
        out_json,
    ]
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


def write_compare(result: dict[str, Any], args: argparse.Namespace, info: dict[str, Any]) -> str:
    rows: list[Row] = result["rows"]
    body = table_rows(rows, result["baseline"], trial_end=args.aim_comet)
    columns = list(TABLE_COLUMNS)
    if args.aim_comet:
        columns.insert(columns.index("Tune thread per result ms (median / p99)") + 1, TRIAL_END_COLUMN)
    print()
    print(
        f"{args.trials} trials x {args.results} results x {args.metrics} metrics, checkpoint every "
        f"{args.checkpoint_every}; medians of {args.repeats} repeats"
    )
    print(plain(columns, body))
    os.makedirs(args.out_dir, exist_ok=True)
    name = "compare-aim-comet" if args.aim_comet else "compare"
    stem = os.path.join(args.out_dir, f"{name}-{args.trials}x{args.results}")
    md = [
        f"# TrackBridge vs Ray's logger callbacks{': Aim and Comet' if args.aim_comet else ''}: {args.trials} trials "
        f"x {args.results} results x {args.metrics} metrics",
        "",
        f"Machine: {machine_line(info)}.",
        "",
        f"Checkpoint every {args.checkpoint_every} steps; {args.repeats} repeats, configurations interleaved; "
        f"medians. Command: `python -m benchmarks.compare {' '.join(args.argv)}`".rstrip(),
        "",
        markdown(columns, body),
    ]
    if args.aim_comet:
        md += ["", AIM_COMET_NOTE]
    bridge = result.get("bridge")
    if bridge and "error" not in bridge:
        md += [
            "",
            f"Bridge alone, outside Tune ({bridge['trials']} x {bridge['results']} results into a do-nothing "
            f"plugin): {bridge['results_per_second_delivered']:,.0f} results/s delivered; the caller's thread "
            f"spends {bridge['stall_ms_median'] * 1000:.1f} us median, {bridge['stall_ms_p99'] * 1000:.1f} us p99 "
            f"per result.",
        ]
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    with open(stem + ".csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "config",
                "repeat",
                "trials",
                "results",
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
                "stored",
                "expected",
                "notes",
                "error",
            ]
        )
        for row in rows:
            for r in row.runs:
                w.writerow(
                    [
                        r.config,
                        r.repeat,
                        r.trials,
                        r.results,
                        r.passed,
                        r.fit_seconds,
                        r.loop_seconds,
                        r.drain_seconds,
                        r.stall_ms_median,
                        r.stall_ms_p99,
                        r.stall_ms_max,
                        r.trial_end_ms_median,
                        round(r.driver_peak_mib, 1),
                        round(r.tracker_peak_mib, 1),
                        r.tracker_procs,
                        round(r.tree_peak_mib, 1),
                        sum(c["valid"] for c in r.checks),
                        sum(c["expected"] for c in r.checks),
                        "; ".join(note for c in r.checks for note in c.get("notes") or []),
                        r.error or "",
                    ]
                )
    return _write_json(stem, info, args, rows, bridge=bridge)


def _write_json(stem: str, info: dict[str, Any], args: argparse.Namespace, rows: Any, **extra: Any) -> str:
    """The raw result file beside the tables: machine, arguments, every run; returns the table's path."""
    with open(stem + ".json", "w", encoding="utf-8") as f:
        runs = [r.__dict__ for row in rows for r in row.runs]
        json.dump({"machine": info, "args": args.argv, **extra, "runs": runs}, f, indent=1, default=str)
    print(f"\nwritten: {stem}.md, .csv, .json")
    return stem + ".md"


AIM_COMET_NOTE = (
    "Baseline, no tracking: the same trainable and Tune run (same trials, results, metrics and checkpoints, "
    "`TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1`) with no callback passed: no tracker imported. Ray's callbacks run with Ray's defaults: `AimLoggerCallback(repo=...)` "
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

# ============================================================================================ in-trial
IN_TRIAL_COLUMNS = [
    "configuration",
    "trackbridge.log calls per result",
    "fit() s",
    "x no tracking",
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
            _progress(r)
    rows = []
    for name, calls in variants:
        label = _label(name)
        if name != "none" and not calls:
            label += ", no in-trial calls (reference)"
        rows.append(Row(name if calls or name == "none" else f"{name}:0", label, T, R, runs[(name, calls)]))
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
                _fmt(fit),
                _fmt(ratio, ".2f") + "x" if ratio is not None else "-",
                "-" if med is None else f"{med:.1f} / {p99:.1f}",
                "-" if first is None or not called else f"{first:.1f} / {later:.1f}",
                "-" if share is None else f"{share * 100:.1f} %",
                _fmt(row.median("trial_end_ms_median"), ".0f"),
                _fmt(row.median("step_end_ms_total"), ".0f"),
                _fmt(row.median("drain_seconds")),
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
        busy = _median([r.plugin_busy.get(plugin) for r in row.runs])
        parts.append(f"{_short(plugin)} {_fmt(busy, '.1f')}")
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
    os.makedirs(args.out_dir, exist_ok=True)
    stem = os.path.join(args.out_dir, f"in-trial-{args.trials}x{args.results}x{n}")
    md = [
        f"# Logging from inside trials: {args.trials} trials x {args.results} results x {n} in-trial calls",
        "",
        f"Machine: {machine_line(info)}.",
        "",
        f"{setup}. Command: `python -m benchmarks.compare {' '.join(args.argv)}`".rstrip(),
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
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    fields = [
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
    with open(stem + ".csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for row in rows:
            for r in row.runs:
                res = [c for c in r.checks if c.get("kind", "results") == "results"]
                inn = [c for c in r.checks if c.get("kind") == "in-trial"]
                values = {
                    **{k: getattr(r, k) for k in fields if hasattr(r, k)},
                    "ok": r.passed,
                    "driver_peak_mib": round(r.driver_peak_mib, 1),
                    "results_stored": sum(c["valid"] for c in res),
                    "results_expected": sum(c["expected"] for c in res),
                    "in_trial_stored": sum(c["valid"] for c in inn),
                    "in_trial_expected": sum(c["expected"] for c in inn),
                    "in_trial_duplicates": sum(c.get("duplicates", 0) for c in inn),
                    "error": r.error or "",
                }
                w.writerow([values[k] for k in fields])
    return _write_json(stem, info, args, rows, baseline=IN_TRIAL_BASELINE)


# ============================================================================================ sweep
def sweep(args: argparse.Namespace, workdir: str, info: dict[str, Any]) -> str:
    sizes = list(args.sizes)
    names = list(args.configs)
    direct = [] if args.no_direct else [f"direct-{t}" for t in ("mlflow", "tensorboard", "wandb")]
    print(
        f"sweep: sizes {', '.join(f'{t}x{r}' for t, r in sizes)}; configurations {', '.join(names + direct)}; "
        f"{args.repeats} repeats",
        flush=True,
    )
    rows: list[Row] = []
    for trials, results in sizes:
        runs: dict[str, list[RunResult]] = {n: [] for n in names + direct}
        for repeat in range(args.repeats):
            for name in names + direct:
                r = run_config(name, trials, results, repeat, args, workdir)
                runs[name].append(r)
                _progress(r)
        rows += [Row(n, _label(n), trials, results, runs[n]) for n in names + direct]
    header = [
        "T x R",
        "configuration",
        "fit() s",
        "drain s",
        "results/s",
        "added to no tracking s",
        "direct-write floor s (sum of 3)",
        "added / floor",
        "Tune thread per result ms (median / p99)",
        "driver peak MiB",
        "tracker processes MiB (count)",
        "status",
    ]
    body = []
    points = []
    for trials, results in sizes:
        here = {row.config: row for row in rows if (row.trials, row.results) == (trials, results)}
        base = here["none"].median("fit_seconds") if "none" in here else None
        floor_parts = [here[d].median("fit_seconds") for d in direct if d in here]
        floor = sum(floor_parts) if floor_parts and all(p is not None for p in floor_parts) else None
        for name in names + direct:
            row = here[name]
            fit = row.median("fit_seconds")
            added = fit - base if fit is not None and base is not None and not name.startswith("direct-") else None
            ratio = added / floor if added is not None and floor else None
            med, p99 = row.median("stall_ms_median"), row.median("stall_ms_p99")
            procs = max((r.tracker_procs for r in row.runs), default=0)
            body.append(
                [
                    f"{trials}x{results}",
                    name,
                    _fmt(fit),
                    _fmt(row.median("drain_seconds")),
                    _fmt(trials * results / fit if fit else None, ",.0f"),
                    _fmt(added),
                    _fmt(floor) if name == "tb-all" else "",
                    _fmt(ratio) if name == "tb-all" else "",
                    "-" if med is None else f"{med:.3f} / {p99:.2f}",
                    _fmt(row.median("driver_peak_mib"), ".0f"),
                    f"{row.median('tracker_peak_mib'):.0f} ({procs})" if procs else "0",
                    row.status,
                ]
            )
            points.append(
                {
                    "trials": trials,
                    "results": results,
                    "config": name,
                    "fit": fit,
                    "drain": row.median("drain_seconds"),
                    "results_per_s": trials * results / fit if fit else None,
                    "added": added,
                    "floor": floor,
                    "stall_median": med,
                    "stall_p99": p99,
                    "driver_mib": row.median("driver_peak_mib"),
                    "passed": row.passed,
                }
            )
    print()
    print(plain(header, body))
    os.makedirs(args.out_dir, exist_ok=True)
    stem = os.path.join(args.out_dir, "sweep")
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write(
            f"# Scale sweep\n\nMachine: {machine_line(info)}.\n\n{args.metrics} metrics per result, checkpoint "
            f"every {args.checkpoint_every} steps, {args.repeats} repeat(s), medians. Command: "
            f"`python -m benchmarks.compare {' '.join(args.argv)}`\n\n{markdown(header, body)}\n\n"
            f"![sweep](sweep.png)\n"
        )
    with open(stem + ".csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(points[0]))
        w.writeheader()
        w.writerows(points)
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump(
            {"machine": info, "args": args.argv, "runs": [r.__dict__ for row in rows for r in row.runs]},
            f,
            indent=1,
            default=str,
        )
    plot_sweep(points, stem + ".png", args.metrics)
    print(f"\nwritten: {stem}.md, .csv, .png")
    return stem + ".md"


def plot_sweep(points: list[dict[str, Any]], path: str, metrics: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    configs_seen = [c for c in dict.fromkeys(p["config"] for p in points)]
    for name in configs_seen:
        pts = sorted((p for p in points if p["config"] == name and p["fit"]), key=lambda p: p["trials"] * p["results"])
        if not pts:
            continue
        x = [p["trials"] * p["results"] for p in pts]
        style = "--" if name.startswith("direct-") else "-"
        axes[0].plot(x, [p["fit"] for p in pts], style, marker="o", label=name)
        if not name.startswith("direct-"):
            axes[1].plot(x, [p["results_per_s"] for p in pts], marker="o", label=name)
        if pts[0]["stall_median"] is not None:
            axes[2].plot(x, [p["stall_median"] for p in pts], marker="o", label=f"{name} median")
            axes[2].plot(x, [p["stall_p99"] for p in pts], marker="x", linestyle=":", label=f"{name} p99")
    floor = sorted({(p["trials"] * p["results"], p["floor"]) for p in points if p["floor"]})
    if floor:
        axes[0].plot([f[0] for f in floor], [f[1] for f in floor], "k:", marker="s", label="direct floor, sum of 3")
    axes[0].set(
        title="Tuner.fit() wall time",
        xlabel="results (trials x results per trial)",
        ylabel="seconds",
        xscale="log",
        yscale="log",
    )
    axes[1].set(
        title="results/s through Tune (higher is better)",
        xlabel="results",
        ylabel="results per second",
        xscale="log",
        yscale="log",
    )
    axes[2].set(
        title="Tune's thread inside the callback, per result", xlabel="results", ylabel="ms", xscale="log", yscale="log"
    )
    axes[2].axhline(0.2, color="grey", linewidth=0.8, label="target median 0.2 ms")
    axes[2].axhline(2.0, color="grey", linewidth=0.8, linestyle="--", label="target p99 2 ms")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"TrackBridge scale sweep ({metrics} metrics per result)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ============================================================================================ CLI
def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        t, r = part.lower().split("x")
        out.append((int(t), int(r)))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--results", type=int, default=200, help="results per trial")
    p.add_argument("--metrics", type=int, default=NUM_METRICS, help="metrics per result")
    p.add_argument("--checkpoint-every", type=int, default=50, help="a checkpoint every K steps (0: none)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--configs", help=f"comma-separated subset of: {', '.join(configs.CONFIGS)}")
    p.add_argument(
        "--aim-comet",
        action="store_true",
        help=f"compare Ray's Aim and Comet callbacks with TrackBridge's plugins ({', '.join(configs.AIM_COMET_CONFIGS)}; "
        "no direct-write floor, no bridge-alone); written as compare-aim-comet-TxR",
    )
    p.add_argument("--cpus", type=int, default=4, help="Ray's logical CPUs = trials running at once")
    p.add_argument("--work", type=float, default=0.0, help="seconds of 'training' per step (default: none)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 trials x 20 results, 1 repeat")
    p.add_argument("--sweep", action="store_true", help="the scale sweep instead of the comparison")
    p.add_argument(
        "--sizes", type=_sizes, default=None, help="sweep sizes, e.g. 4x50,4x200 (default 4x50,4x200,8x500,16x1000)"
    )
    p.add_argument("--full", action="store_true", help="add 16x2000 to the sweep (minutes per configuration)")
    p.add_argument("--no-direct", action="store_true", help="skip the direct-write floor")
    p.add_argument("--no-bridge", action="store_true", help="skip the bridge-alone measurement")
    p.add_argument(
        "--in-trial-logs",
        type=int,
        default=0,
        metavar="N",
        help="the in-trial case: N trackbridge.log calls per result, timed on the worker (default 0: off)",
    )
    p.add_argument(
        "--no-results-only",
        action="store_true",
        help="in-trial case: skip the reference run of tb-all without in-trial calls",
    )
    p.add_argument("--timeout", type=float, default=1800, help="seconds before a child is killed (FAILED)")
    p.add_argument("--out-dir", default=RESULTS_DIR)
    p.add_argument("--workdir", help="where the stores go (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep every configuration's stores")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.trials, args.results, args.repeats = 2, 20, 1
        args.checkpoint_every = min(args.checkpoint_every, 10)
        if args.sizes is None:
            args.sizes = [(2, 10), (2, 40)]
    if args.sizes is None:
        args.sizes = list(DEFAULT_SIZES)
    if args.full and FULL_SIZE not in args.sizes:
        args.sizes.append(FULL_SIZE)
    if args.aim_comet:
        if args.sweep or args.in_trial_logs or args.configs:
            p.error("--aim-comet is its own comparison: it does not combine with --sweep, --in-trial-logs or --configs")
        args.configs = ",".join(configs.AIM_COMET_CONFIGS)
        args.no_direct = args.no_bridge = True
    if args.configs:
        args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
        unknown = [c for c in args.configs if c not in configs.CONFIGS]
        if unknown:
            p.error(f"unknown configuration(s) {unknown}; known: {', '.join(configs.CONFIGS)}")
    elif args.in_trial_logs:
        args.configs = list(configs.IN_TRIAL_CONFIGS)
    else:
        args.configs = list(configs.SWEEP_CONFIGS if args.sweep else configs.DEFAULT_CONFIGS)
    if args.in_trial_logs:
        if args.sweep:
            p.error("--in-trial-logs measures one size; it does not combine with --sweep")
        native = [c for c in args.configs if configs.CONFIGS[c].kind == "native"]
        if native:
            p.error(f"{native}: Ray's callbacks receive nothing from trackbridge.log; use TrackBridge configurations")
    if "none" not in args.configs:
        args.configs.insert(0, "none")  # every ratio needs the baseline
    if args.sweep and not args.no_direct and "tb-all" not in args.configs:
        print("note: the direct-write floor is compared with tb-all, which is not selected")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    trackers = {t for name in args.configs for t in configs.CONFIGS[name].trackers}
    info = machine(tuple(m for t, m in (("aim", "aim"), ("comet", "comet_ml")) if t in trackers))
    print(f"machine: {machine_line(info)}", flush=True)
    workdir = args.workdir or tempfile.mkdtemp(prefix="trackbridge-bench-")
    os.makedirs(workdir, exist_ok=True)
    print(f"stores under {workdir}", flush=True)
    try:
        if args.sweep:
            sweep(args, workdir, info)
        elif args.in_trial_logs:
            write_in_trial(in_trial(args, workdir), args, info)
        else:
            write_compare(compare(args, workdir), args, info)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
