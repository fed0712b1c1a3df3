"""Where the time goes: one workload run under py-spy, its interpreter time split by who spends it.

    python -m benchmarks.where_time_goes --config tb-all-threads --trials 4 --results 200
    python -m benchmarks.where_time_goes --config tb-all-isolated --trials 16 --results 2000

The run is ``benchmarks.workload`` (the comparison's workload, ``--cpus 2`` by default) started by
``py-spy record --gil --threads --subprocesses --nonblocking``: every sample is a stack that held a Python
interpreter's lock (GIL) at that moment, in the driver or in a process it started (an ``isolate=``d
plugin's process, Ray's workers). Each sample is then attributed:

- **who**: Tune's own loop (the driver's main thread outside TrackBridge), TrackBridge on Tune's thread
  (``TrackBridgeCallback``'s hooks), a plugin (its worker thread in the driver, or its own process), the
  trials (Ray's worker processes), other threads;
- **phase** (plugins): start-up (``trackbridge_setup``, ``trackbridge_experiment_start``), trial start, steady
  state (results, flushes, checkpoints, in-trial values, config changes), trial and run end, and the bridge
  between calls (queue, journal, delivery loop);
- **owner** (plugins): the innermost frame's package: the tracker's SDK and the libraries it calls
  (SQLAlchemy, Alembic, protobuf, ...), imports, or TrackBridge (``trackbridge``, its plugins, pluggy).

Processes py-spy cannot read (``wandb-core`` is a Go binary) are measured by CPU seconds instead: the process
tree is sampled with psutil every 0.2 s. Seconds are samples / rate: interpreter-lock time, not wall time;
with ``--nonblocking`` py-spy does not pause the program, so the run's own times are barely disturbed.
Results: ``benchmarks/results/where-time-goes-<config>-<T>x<R>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

#: Hook names in a plugin's stack -> phase.
PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("start-up", ("trackbridge_setup", "trackbridge_experiment_start")),
    ("trial start", ("trackbridge_trial_start",)),
    ("run and trial end", ("trackbridge_trial_complete", "trackbridge_experiment_end")),
    (
        "steady state",
        (
            "trackbridge_trial_result",
            "trackbridge_flush",
            "trackbridge_trial_checkpoint",
            "trackbridge_trial_log",
            "trackbridge_config_update",
            "trackbridge_trial_branch",
        ),
    ),
)
#: Path fragments of the innermost frame that make it TrackBridge's own work.
OURS = ("trackbridge/", "trackbridge_", "pluggy/", "benchmarks/")


def _frame_file(frame: str) -> str:
    """py-spy's raw frame ``function (path:line)`` -> path."""
    if "(" not in frame:
        return frame
    return frame.rsplit("(", 1)[1].rsplit(":", 1)[0]


def _owner(frames: list[str]) -> str:
    leaf = _frame_file(frames[-1]) if frames else ""
    if any("<frozen importlib" in f for f in frames):
        return "imports"
    if any(part in leaf for part in OURS):
        return "TrackBridge"
    return "tracker SDK"


def _phase(frames: list[str]) -> str:
    joined = ";".join(frames)
    for phase, hooks in PHASES:
        if any(f".{hook} " in joined or f"{hook} (" in joined for hook in hooks):
            return phase
    return "bridge between calls"


def _who(process: str, in_driver: bool, thread_name: str, frames: list[str]) -> tuple[str, str, str]:
    """(who, phase, owner) of one sample."""
    if "trackbridge.process_transport" in process:
        plugin = thread_name.split("-", 1)[1] if thread_name.startswith("trackbridge-") else ""
        who = f"plugin {plugin} (own process)" if plugin else "plugin processes, receiving calls (main thread)"
        return (who, _phase(frames), _owner(frames))
    if in_driver:
        if thread_name.startswith("trackbridge-") and thread_name not in ("trackbridge-inbox", "trackbridge-reap"):
            return (f"plugin {thread_name.split('-', 1)[1]} (driver thread)", _phase(frames), _owner(frames))
        if thread_name == "MainThread":
            ours = any("trackbridge/" in _frame_file(f) for f in frames)
            return ("TrackBridge on Tune's thread" if ours else "Tune's loop (driver main thread)", "", "")
        return ("other driver threads (Ray's, the trackers', TrackBridge's in-trial collector)", "", "")
    if "ray/_private/workers" in process:
        return ("Ray worker processes (the trials, TrackBridge's in-trial inbox actor, idle workers)", "", "")
    return ("Ray's services (dashboard, log monitor, autoscaler, agents) and other processes", "", "")


def attribute(raw_lines: list[str]) -> collections.Counter[tuple[str, str, str]]:
    """Samples per (who, phase, owner) from py-spy's raw output (``--threads --subprocesses``)."""
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for line in raw_lines:
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        # ``process <pid>:"<command line>"`` frames, from the profiled program down to the sampled process
        chain: list[str] = []
        while frames and frames[0].startswith("process "):
            chain.append(frames.pop(0))
        process = chain[-1] if chain else ""
        thread = frames.pop(0) if frames and frames[0].startswith("thread ") else ""
        thread_name = thread.split(": ", 1)[1] if ": " in thread else ""
        counts[_who(process, len(chain) <= 1, thread_name, frames)] += int(n)
    return counts


def _cpu_by_process(root_pid: int, stop: list[bool], out: dict[int, tuple[str, float]]) -> None:
    import psutil

    root = psutil.Process(root_pid)
    while not stop[0]:
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            procs = []
        for p in procs:
            try:
                t = p.cpu_times()
                out[p.pid] = (p.name(), t.user + t.system)
            except psutil.Error:
                pass
        time.sleep(0.2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import threading

    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    work = tempfile.mkdtemp(prefix="where-time-goes-")
    raw = os.path.join(work, "raw.txt")
    out_json = os.path.join(work, "run.json")
    workload = [sys.executable, "-m", "benchmarks.workload", "--config", args.config, "--root", os.path.join(work, "r")]
    workload += ["--trials", str(args.trials), "--results", str(args.results), "--cpus", str(args.cpus)]
    workload += ["--out", out_json]
    command = ["py-spy", "record", "--gil", "--threads", "--subprocesses", "--nonblocking", "--rate", str(args.rate)]
    command += ["--format", "raw", "--output", raw, "--"] + workload
    env = dict(os.environ, TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1", WANDB_MODE="offline")
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu: dict[int, tuple[str, float]] = {}
    stop = [False]
    time.sleep(0.5)  # py-spy starts the workload as its child
    import psutil

    children = psutil.Process(proc.pid).children()
    sampler = threading.Thread(target=_cpu_by_process, args=(children[0].pid if children else proc.pid, stop, cpu))
    sampler.start()
    proc.wait()
    stop[0] = True
    sampler.join()
    with open(out_json, encoding="utf-8") as f:
        measured = json.load(f)
    with open(raw, encoding="utf-8") as f:
        lines = f.read().splitlines()
    counts = attribute(lines)
    cpu_by_name: collections.Counter[str] = collections.Counter()
    for name, seconds in cpu.values():
        cpu_by_name[name] += seconds
    shutil.rmtree(work, ignore_errors=True)
    return {
        "config": args.config,
        "trials": args.trials,
        "results": args.results,
        "cpus": args.cpus,
        "rate": args.rate,
        "fit_seconds": measured.get("fit_seconds"),
        "drain_seconds": (measured.get("trackbridge_report") or {}).get("drain_seconds"),
        "ok": measured.get("ok"),
        "gil_seconds": [
            {"who": who, "phase": phase, "owner": owner, "seconds": n / args.rate}
            for (who, phase, owner), n in counts.most_common()
        ],
        "cpu_seconds_by_process_name": dict(cpu_by_name.most_common()),
    }


def markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        f"# Where the time goes: `{result['config']}`, {result['trials']} x {result['results']}, "
        f"--cpus {result['cpus']}",
        "",
        f"`{command}`",
        "",
        f"fit() {result['fit_seconds']:.2f} s (under py-spy --nonblocking), drain {result['drain_seconds']} s, "
        f"all values stored: {result['ok']}",
        "",
        "Interpreter-lock (GIL) seconds: samples holding a Python interpreter's lock / sampling rate.",
        "",
        "| who | phase | owner | GIL s |",
        "|---|---|---|---|",
    ]
    for row in sorted(result["gil_seconds"], key=lambda r: (r["who"], r["phase"], r["owner"])):
        lines.append(f"| {row['who']} | {row['phase'] or '-'} | {row['owner'] or '-'} | {row['seconds']:.2f} |")
    lines += ["", "CPU seconds by process name (psutil, every 0.2 s):", "", "| process | CPU s |", "|---|---|"]
    for name, seconds in result["cpu_seconds_by_process_name"].items():
        if seconds >= 0.05:
            lines.append(f"| {name} | {seconds:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tb-all-threads", help="a configuration of benchmarks.configs")
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--results", type=int, default=200)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--out-dir", default=RESULTS_DIR)
    args = p.parse_args(argv)
    result = run(args)
    command = "python -m benchmarks.where_time_goes " + " ".join(sys.argv[1:] if argv is None else argv)
    stem = os.path.join(args.out_dir, f"where-time-goes-{args.config}-{args.trials}x{args.results}")
    os.makedirs(args.out_dir, exist_ok=True)
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump({"command": command, **result}, f, indent=1)
    text = markdown(result, command)
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
