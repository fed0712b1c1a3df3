"""One benchmark child process, run with the memory of its whole process tree sampled.

Every measurement of the benchmark runs in a child (``python -m benchmarks.workload``, ``.direct_write``,
``.bridge_overhead``): a fresh interpreter, a fresh Ray instance, its own process tree. ``run_child`` starts
it with the benchmark's environment (``workload.CHILD_ENV``, no API keys, no tracking URI, no Ray address),
samples the RSS of the child and all its descendants every 0.2 s (``TreeSampler``), kills it and everything
it started if it times out, kills what it left running once it exited, and returns the JSON it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

from benchmarks.workload import CHILD_ENV

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024


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
    """Samples the RSS of a process and all its descendants every ``interval`` seconds; keeps the peaks of
    the process itself (the driver), of the tracker processes (``is_tracker_process``: their sum and their
    count) and of the whole tree."""

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


def child_env() -> dict[str, str]:
    """The child's environment: this one, plus ``CHILD_ENV``, minus API keys and tracker/Ray addresses."""
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
    """Run one child (``python <argv>``) with its tree sampled; returns its JSON, the sampler, an error."""
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=os.path.dirname(out_json),
            env=child_env(),
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
            kill_tree(proc.pid)
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


def kill_tree(pid: int) -> None:
    """Kill a timed-out child and everything it started (ours: found from its own pid)."""
    import psutil

    try:
        root = psutil.Process(pid)
        for child in root.children(recursive=True):
            child.kill()
        root.kill()
    except psutil.Error:
        pass
