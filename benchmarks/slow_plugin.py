"""Does a slow tracker slow tuning down? A plugin that sleeps in every hook, against no tracking.

    python -m benchmarks.slow_plugin [--trials 2] [--results 10] [--sleep 1.0] [--repeats 3]

For each configuration (interleaved, repeated, medians reported) it prints the wall time of ``Tuner.fit()``,
split into the tuning loop (until Tune called ``on_experiment_end``) and TrackBridge's final drain. With a
plugin sleeping ``S`` seconds per hook and ``N`` results, a tracker running on Tune's thread would add about
``N * S`` to the tuning loop; TrackBridge should add ~0 there and pay for it only in the drain.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402

from trackbridge import TrackBridgeCallback  # noqa: E402
from trackbridge.testing import RecordingPlugin  # noqa: E402


def trainable(config):
    for i in range(config["results"]):
        time.sleep(config["work"])
        tune.report({"loss": 1.0 / (i + 1)})


class LoopTimer(tune.Callback):
    """Records when Tune's loop ended (on_experiment_end of the callbacks listed before TrackBridge)."""

    def __init__(self):
        self.ended = None

    def on_experiment_end(self, trials, **info):
        self.ended = time.monotonic()


def run_once(trials: int, results: int, sleep: float | None, work: float, storage: str) -> tuple[float, float, int]:
    timer = LoopTimer()
    callbacks: list = [timer]
    plugin = None
    if sleep is not None:
        plugin = RecordingPlugin(name="sleepy", sleep=sleep)
        callbacks.append(TrackBridgeCallback(plugins=[plugin], drain_timeout=None))
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search(list(range(trials))), "results": results, "work": work},
        run_config=tune.RunConfig(storage_path=storage, callbacks=callbacks, verbose=0),
    )
    started = time.monotonic()
    tuner.fit()
    total = time.monotonic() - started
    loop = (timer.ended or time.monotonic()) - started
    delivered = sum(1 for e in plugin.events if e[0] == "result") if plugin else 0
    return loop, total, delivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--results", type=int, default=10)
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds the plugin sleeps in every hook")
    parser.add_argument("--work", type=float, default=0.05, help="seconds of 'training' per result")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    storage = tempfile.mkdtemp(prefix="trackbridge-bench-")
    rows: dict[str, list[tuple[float, float, int]]] = {"no tracking": [], f"plugin sleeping {args.sleep}s/hook": []}
    for _ in range(args.repeats):  # interleaved: A B A B ...
        rows["no tracking"].append(run_once(args.trials, args.results, None, args.work, storage))
        rows[f"plugin sleeping {args.sleep}s/hook"].append(
            run_once(args.trials, args.results, args.sleep, args.work, storage)
        )
    n = args.trials * args.results
    base_loop = statistics.median(r[0] for r in rows["no tracking"])
    print(f"\n{args.trials} trials x {args.results} results ({n} results), {args.repeats} repeats, medians")
    print(
        f"{'configuration':<32}{'tuning loop s':>14}{'fit() s':>10}{'drain s':>10}{'loop ratio':>12}{'results delivered':>19}"
    )
    for name, runs in rows.items():
        loop = statistics.median(r[0] for r in runs)
        total = statistics.median(r[1] for r in runs)
        delivered = min(r[2] for r in runs)
        print(f"{name:<32}{loop:>14.2f}{total:>10.2f}{total - loop:>10.2f}{loop / base_loop:>12.2f}{delivered:>19}")
    print(
        f"\nA tracker doing the same sleeps on Tune's thread would add about {n * args.sleep:.0f}s to the tuning loop."
    )


if __name__ == "__main__":
    main()
