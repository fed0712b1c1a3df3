"""The bridge alone, outside Tune: how many results/s TrackBridge takes in and delivers to a plugin that
does nothing, and how long each ``on_trial_result`` keeps the caller's thread.

    python -m benchmarks.bridge_overhead [--trials 16] [--results 2000] [--metrics 12] [--json out.json]

The callback is driven exactly as Tune's driver loop would drive it (``setup``, ``on_trial_start`` per
trial, then results round-robin over the trials, each a Tune-shaped result dict with the auto-filled
fields, then ``on_trial_complete`` and ``on_experiment_end``), but without Ray running, so the numbers are
the bridge's own ceiling: inside Tune the loop itself is the limit (see the ``tb-noop`` row of
``benchmarks.compare``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
from typing import Any

from benchmarks.workload import NUM_METRICS, metric_names, metric_value


class FakeTrial:
    """The attributes of ``ray.tune.experiment.Trial`` that TrackBridge reads."""

    def __init__(self, index: int, root: str) -> None:
        self.trial_id = f"bench_{index:05d}"
        self.config = {"x": index, "lr": 0.01 * (index + 1), "model": {"depth": 4, "width": 128}}
        self.experiment_dir_name = "bridge_overhead"
        self.local_experiment_path = root
        self.remote_experiment_path = root
        self.local_path = os.path.join(root, self.trial_id)
        self.path = self.local_path
        self.experiment_tag = f"{index}_x={index}"
        self.error_file = None

    def __str__(self) -> str:
        return f"trainable_{self.trial_id}"


def tune_result(trial: FakeTrial, step: int, names: list[str], started: float) -> dict[str, Any]:
    """A result dict shaped like the one Tune hands to callbacks (user metrics + auto-filled fields)."""
    now = time.time()
    result: dict[str, Any] = {name: metric_value(step, k) for k, name in enumerate(names)}
    result.update(
        {
            "timestamp": int(now),
            "checkpoint_dir_name": None,
            "done": False,
            "training_iteration": step,
            "trial_id": trial.trial_id,
            "date": "2026-01-01_00-00-00",
            "time_this_iter_s": 0.001,
            "time_total_s": now - started,
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "node_ip": "127.0.0.1",
            "config": trial.config,
            "time_since_restore": now - started,
            "iterations_since_restore": step,
            "experiment_tag": trial.experiment_tag,
        }
    )
    return result


def measure(trials: int, results: int, metrics: int) -> dict[str, Any]:
    from benchmarks.configs import NoopPlugin
    from trackbridge import TrackBridgeCallback

    names = metric_names(metrics)
    root = tempfile.mkdtemp(prefix="trackbridge-bridge-")
    callback = TrackBridgeCallback(plugins=[NoopPlugin()])
    fake = [FakeTrial(i, root) for i in range(trials)]
    started = time.time()
    # Built beforehand: building the result dict is Tune's work, not the bridge's.
    pending = [[tune_result(t, step, names, started) for t in fake] for step in range(1, results + 1)]
    callback.setup()
    for trial in fake:
        callback.on_trial_start(0, fake, trial)
    stalls: list[int] = []
    clock = time.perf_counter_ns
    t0 = time.perf_counter()
    for step, row in enumerate(pending, start=1):
        for trial, result in zip(fake, row, strict=False):
            before = clock()
            callback.on_trial_result(step, fake, trial, result)
            stalls.append(clock() - before)
    submitted = time.perf_counter()
    for trial in fake:
        callback.on_trial_complete(results, fake, trial)
    callback.on_experiment_end(fake)
    drained = time.perf_counter()
    report = callback.report or {}
    delivered = sum(p.get("delivered", 0) for p in report.get("plugins", []))
    n = trials * results
    stalls.sort()
    return {
        "trials": trials,
        "results": results,
        "metrics": metrics,
        "results_total": n,
        "delivered": delivered,
        "complete": delivered == n,
        "submit_seconds": submitted - t0,
        "total_seconds": drained - t0,
        "results_per_second_submitted": n / (submitted - t0),
        "results_per_second_delivered": n / (drained - t0),
        "stall_ms_median": statistics.median(stalls) / 1e6,
        "stall_ms_p99": stalls[min(n - 1, int(0.99 * n))] / 1e6,
        "stall_ms_max": stalls[-1] / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--results", type=int, default=2000)
    parser.add_argument("--metrics", type=int, default=NUM_METRICS)
    parser.add_argument("--json", dest="out")
    args = parser.parse_args()
    out = measure(args.trials, args.results, args.metrics)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    for key, value in out.items():
        print(f"{key:<32}{value:.4g}" if isinstance(value, float) else f"{key:<32}{value}")


if __name__ == "__main__":
    main()
