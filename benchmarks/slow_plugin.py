"""Does a slow tracker slow tuning down? A plugin that sleeps in every hook, against no tracking.

    python -m benchmarks.slow_plugin [--trials 2] [--results 10] [--sleep 1.0] [--work 0.05] [--repeats 3]

One Ray instance (``--cpus`` logical CPUs, default 2), then for each configuration, interleaved and repeated,
one ``Tuner.fit()`` of a trainable reporting ``--results`` results per trial with ``--work`` seconds of sleep
before each: no callback ("no tracking"), and ``TrackBridgeCallback`` with a ``RecordingPlugin`` sleeping
``--sleep`` seconds in every hook (``drain_timeout=None``: the drain waits for every event). Per configuration,
medians over the repeats: the wall time of ``fit()``, split into the tuning loop (until Tune called
``on_experiment_end`` of a callback listed before TrackBridge) and TrackBridge's final drain, the loop's ratio
to no tracking, and the fewest results the plugin received (all of them, or the run is FAILED). With ``N``
results, a tracker doing the same sleeps on Tune's thread would add about ``N * S`` to the loop; TrackBridge
should add ~0 there and pay for it only in the drain.

Prints the table and writes ``slow-plugin-TxR`` (Markdown, CSV with one line per run, JSON) into
``--out-dir`` (default ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402

from benchmarks.result_files import (  # noqa: E402
    RESULTS_DIR,
    command,
    machine,
    machine_line,
    stem,
    write_csv,
    write_markdown,
)
from benchmarks.tables import markdown, plain  # noqa: E402
from trackbridge import TrackBridgeCallback  # noqa: E402
from trackbridge.testing import RecordingPlugin  # noqa: E402

COLUMNS = ["configuration", "tuning loop s", "fit() s", "drain s", "loop x no tracking", "results delivered", "status"]
RUN_FIELDS = ["configuration", "repeat", "loop_seconds", "fit_seconds", "delivered", "expected"]


def trainable(config: dict[str, Any]) -> None:
    for i in range(config["results"]):
        time.sleep(config["work"])
        tune.report({"loss": 1.0 / (i + 1)})


class LoopTimer(tune.Callback):
    """Records when Tune's loop ended (on_experiment_end of the callbacks listed before TrackBridge)."""

    def __init__(self) -> None:
        self.ended: float | None = None

    def on_experiment_end(self, trials: Any, **info: Any) -> None:
        self.ended = time.monotonic()


def run_once(trials: int, results: int, sleep: float | None, work: float, storage: str) -> tuple[float, float, int]:
    """One ``fit()``: (tuning loop s, fit() s, results the plugin received); ``sleep`` None: no callback."""
    callbacks: list[Any] = []
    timer = None
    plugin = None
    if sleep is not None:
        timer = LoopTimer()
        plugin = RecordingPlugin(name="sleepy", sleep=sleep)
        callbacks = [timer, TrackBridgeCallback(plugins=[plugin], drain_timeout=None)]
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search(list(range(trials))), "results": results, "work": work},
        run_config=tune.RunConfig(storage_path=storage, callbacks=callbacks or None, verbose=0),
    )
    started = time.monotonic()
    tuner.fit()
    total = time.monotonic() - started
    loop = ((timer.ended if timer else None) or time.monotonic()) - started
    delivered = sum(1 for e in plugin.events if e[0] == "result") if plugin else 0
    return loop, total, delivered


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--results", type=int, default=10)
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds the plugin sleeps in every hook")
    parser.add_argument("--work", type=float, default=0.05, help="seconds of 'training' per result")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2, help="Ray's logical CPUs")
    parser.add_argument("--out-dir", default=RESULTS_DIR, help="where the result files go")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    info = machine()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    storage = tempfile.mkdtemp(prefix="trackbridge-bench-")
    slow = f"plugin sleeping {args.sleep}s/hook"
    runs: dict[str, list[tuple[float, float, int]]] = {"no tracking": [], slow: []}
    try:
        for _ in range(args.repeats):  # interleaved: A B A B ...
            runs["no tracking"].append(run_once(args.trials, args.results, None, args.work, storage))
            runs[slow].append(run_once(args.trials, args.results, args.sleep, args.work, storage))
    finally:
        ray.shutdown()
    n = args.trials * args.results
    base_loop = statistics.median(r[0] for r in runs["no tracking"])
    body = []
    for name, measured in runs.items():
        loop = statistics.median(r[0] for r in measured)
        total = statistics.median(r[1] for r in measured)
        delivered = min(r[2] for r in measured) if name == slow else None
        ok = delivered is None or delivered == n
        body.append(
            [
                name,
                f"{loop:.2f}",
                f"{total:.2f}",
                f"{total - loop:.2f}" if name == slow else "-",  # no callback: no drain
                f"{loop / base_loop:.2f}x",
                "-" if delivered is None else f"{delivered}/{n}",
                "ok" if ok else "FAILED: results lost",
            ]
        )
    setup = (
        f"{args.trials} trials x {args.results} results ({n} results), {args.work}s of work per result, "
        f"Ray given {args.cpus} logical CPUs; {args.repeats} repeats, interleaved; medians"
    )
    print(f"\n{setup}")
    print(plain(COLUMNS, body))
    note = f"A tracker doing the same sleeps on Tune's thread would add about {n * args.sleep:.0f}s to the tuning loop."
    print(f"\n{note}")
    path = stem(args, f"slow-plugin-{args.trials}x{args.results}")
    md = [f"# A slow plugin ({args.sleep}s per hook) against no tracking", "", f"Machine: {machine_line(info)}.", ""]
    md += [f"{setup}. Command: `{command(args, 'benchmarks.slow_plugin')}`", "", markdown(COLUMNS, body), "", note]
    write_markdown(path, md)
    lines = [
        [name, i, r[0], r[1], r[2] if name == slow else "", n if name == slow else ""]
        for name in runs
        for i, r in enumerate(runs[name])
    ]
    write_csv(path, RUN_FIELDS, lines)
    with open(path + ".json", "w", encoding="utf-8") as f:
        raw = {name: [dict(zip(RUN_FIELDS[2:5], r, strict=True)) for r in measured] for name, measured in runs.items()}
        json.dump({"machine": info, "args": args.argv, "sleep": args.sleep, "rows": body, "runs": raw}, f, indent=1)
    print(f"written: {path}.md, .csv, .json")


if __name__ == "__main__":
    main()
