"""TrackBridge against no tracking, Ray's own logger callbacks and the trackers' own APIs, in one command.

    python -m benchmarks.compare                      # 4 x 200 comparison, 16 x 2000 goal run, the goals
    python -m benchmarks.compare --quick              # a smoke run: 2 x 20 and 4 x 10, 1 repeat
    python -m benchmarks.compare --no-large           # the 4 x 200 comparison and its goals only
    python -m benchmarks.compare --configs none,tb-all,native-all --repeats 5   # a subset (no large run)
    python -m benchmarks.compare --sweep              # scale sweep 4x50 .. 16x1000 (+ --full: 16x2000)
    python -m benchmarks.compare --sweep --cluster    # the sweep on a 2-node Ray cluster, 4 to 32 trials at once
    python -m benchmarks.compare --in-trial-logs 10   # trackbridge.log from inside trials
    python -m benchmarks.compare --aim-comet          # Ray's Aim and Comet callbacks vs TrackBridge's plugins

The default run, on one Ray node given ``--cpus`` (2) logical CPUs, T trials x R results of 12 floats, a
checkpoint every 50 steps, ``--repeats`` (3) repeats interleaved (A B C A B C ...), medians:

1. the comparison at 4 x 200 (``--trials``, ``--results``): no tracking (``none``: no callback at all), a
   do-nothing Tune callback (``none-callback``), Ray's W&B, MLflow and TBX callbacks alone and together,
   TrackBridge with a do-nothing plugin, with each tracker alone and with all three (``tb-all``: the
   callback's default ``isolate=``; ``tb-all-threads``: ``isolate=False``; ``tb-all-isolated``:
   ``isolate=True``), then the naive (``direct-*``) and the optimized (``fast-*``) direct-write floors
   (``benchmarks/direct_write.py``: each tracker alone, no Tune) and the bridge alone
   (``benchmarks/bridge_overhead.py``);
2. the goal run at 16 x 2000 (``--large-trials``, ``--large-results``): ``none``, ``none-callback``, ``tb-all``
   and the ``fast-*`` floor, the same repeats (``--no-large`` skips it; with ``--configs`` it runs only with
   ``--large``);
3. the goals (``benchmarks/goals.py``), printed as PASS / FAIL / SKIP lines with the measured number and the
   target, and written into every result file of the run and into ``goals-...``.

Every configuration runs in a fresh child process with a fresh Ray instance and fresh tracker stores; the
memory (RSS) of its whole process tree is sampled (the driver; the tracker processes: wandb-core, Ray's W&B
logging actors, TrackBridge's plugin processes); what each tracker stored is read back with its own reader
(``benchmarks/verify.py``) and a run that lost values is FAILED, whatever its speed. Time ratios are against
``none``, driver memory ratios against ``none-callback`` (with any callback, Ray's usage telemetry imports
``mlflow`` and ``wandb`` into the driver); the tables say so. Results: ``compare-TxR`` and
``isolation-TxR`` (Markdown, CSV per run, JSON) under ``benchmarks/results/`` (``--out-dir``).

``--sweep`` runs ``none``, ``none-callback``, ``tb-noop``, ``tb-all`` and both floors at each ``--sizes``
instead and draws one PNG (fit() ratio, driver memory, tracker processes, plugin queue depth, Tune's
thread, the floors); ``--cluster`` runs it on a 2-node ``ray.cluster_utils.Cluster``
(``--cluster-cpus-per-node``, default 16: up to 32 trials at once; default sizes 4x200 .. 32x200).

``--in-trial-logs N`` measures ``trackbridge.log`` from inside trials instead (``benchmarks/in_trial.py``):
N calls of 3 floats before each ``tune.report``, timed on the worker, against the same trainable calling a
do-nothing function; every in-trial point read back. Written as ``in-trial-TxRxN``.

``--aim-comet`` runs the comparison for Aim and Comet instead (``configs.AIM_COMET_CONFIGS``: no tracking,
Ray's ``AimLoggerCallback`` and offline ``CometLoggerCallback``, TrackBridge's ``aim`` and ``comet``), without
floors, bridge alone, large run and goals; written as ``compare-aim-comet-TxR``.

A broken configuration (a plugin that raises, a child that crashes or times out) is a FAILED row, never a
crashed benchmark. The machine is shared and small: numbers move; read ratios, not absolute seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Any

from benchmarks import comparison, configs, goals, sweep
from benchmarks.in_trial import in_trial, write_in_trial
from benchmarks.result_files import RESULTS_DIR, machine, machine_line
from benchmarks.runs import FLOOR_TRACKERS, floor_names
from benchmarks.workload import NUM_METRICS


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        t, r = part.lower().split("x")
        out.append((int(t), int(r)))
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=4, help="the comparison's trials (default 4)")
    p.add_argument("--results", type=int, default=200, help="results per trial (default 200)")
    p.add_argument("--metrics", type=int, default=NUM_METRICS, help="metrics per result (default 12)")
    p.add_argument("--checkpoint-every", type=int, default=50, help="a checkpoint every K steps (0: none)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each configuration; tables show medians")
    p.add_argument("--configs", help=f"comma-separated subset of: {', '.join(configs.CONFIGS)} (none is always run)")
    p.add_argument(
        "--aim-comet",
        action="store_true",
        help="compare Ray's Aim and Comet callbacks with TrackBridge's plugins "
        f"({', '.join(configs.AIM_COMET_CONFIGS)}; "
        "no floors, no bridge-alone, no large run, no goals); written as compare-aim-comet-TxR",
    )
    p.add_argument("--cpus", type=int, default=2, help="Ray's logical CPUs = trials running at once (default 2)")
    p.add_argument("--work", type=float, default=0.0, help="seconds of 'training' per step (default: none)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 x 20 (large run 4 x 10), 1 repeat")
    p.add_argument(
        "--large",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the goal run at --large-trials x --large-results (none, none-callback, tb-all, fast-*) after the "
        "comparison (default: on, off when --configs is given)",
    )
    p.add_argument(
        "--large-configs",
        help=f"the goal run's configurations (default: {', '.join(configs.LARGE_CONFIGS)}; none is always run)",
    )
    p.add_argument("--large-trials", type=int, default=None, help="the goal run's trials (default 16)")
    p.add_argument("--large-results", type=int, default=None, help="the goal run's results per trial (default 2000)")
    p.add_argument("--sweep", action="store_true", help="the scale sweep instead of the comparison")
    p.add_argument("--sizes", type=_sizes, default=None, help="sweep sizes, e.g. 4x50,4x200 (default 4x50 .. 16x1000)")
    p.add_argument("--full", action="store_true", help="add 16x2000 to the sweep (minutes per configuration)")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="run the sweep on a 2-node ray.cluster_utils.Cluster (head + 1 worker node; --cpus unused); "
        "default sizes 4x200,8x200,16x200,32x200",
    )
    p.add_argument(
        "--cluster-cpus-per-node", type=int, default=16, help="--cluster: logical CPUs per node (default 16)"
    )
    p.add_argument("--no-direct", action="store_true", help="skip the naive direct-write floor (direct-*)")
    p.add_argument("--no-fast", action="store_true", help="skip the optimized direct-write floor (fast-*)")
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
    p.add_argument("--out-dir", default=RESULTS_DIR, help="where the result files go (default benchmarks/results)")
    p.add_argument("--workdir", help="where the stores go (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep every configuration's stores")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the presets (``--quick``, ``--aim-comet``, ``--sweep``, ...) resolved."""
    p = _parser()
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    chosen = bool(args.configs)
    if args.cluster and not args.sweep:
        p.error("--cluster runs the scale sweep on 2 nodes: use it with --sweep")
    args.cluster_cpus = args.cluster_cpus_per_node if args.cluster else 0
    large_size = (16, 2000)
    if args.quick:
        args.trials, args.results, args.repeats = 2, 20, 1
        args.checkpoint_every = min(args.checkpoint_every, 10)
        large_size = (4, 10)
        if args.sizes is None:
            args.sizes = [(2, 10), (4, 10)] if args.cluster else [(2, 10), (2, 40)]
    if args.sizes is None:
        args.sizes = list(sweep.CLUSTER_SIZES if args.cluster else sweep.DEFAULT_SIZES)
    if args.full and sweep.FULL_SIZE not in args.sizes:
        args.sizes.append(sweep.FULL_SIZE)
    sized = args.large_trials is not None or args.large_results is not None
    args.large_trials = args.large_trials or large_size[0]
    args.large_results = args.large_results or large_size[1]
    if args.aim_comet:
        if args.sweep or args.in_trial_logs or args.configs:
            p.error("--aim-comet is its own comparison: it does not combine with --sweep, --in-trial-logs or --configs")
        args.configs = ",".join(configs.AIM_COMET_CONFIGS)
        args.no_direct = args.no_fast = args.no_bridge = True
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
    args.large_configs = [c.strip() for c in (args.large_configs or ",".join(configs.LARGE_CONFIGS)).split(",")]
    unknown = [c for c in args.large_configs if c not in configs.CONFIGS]
    if unknown:
        p.error(f"--large-configs: unknown configuration(s) {unknown}; known: {', '.join(configs.CONFIGS)}")
    if "none" not in args.large_configs:
        args.large_configs.insert(0, "none")
    comparing = not (args.sweep or args.in_trial_logs or args.aim_comet)
    if args.large is None:
        args.large = comparing and (not chosen or sized)
    elif args.large and not comparing:
        p.error("--large belongs to the comparison: not with --sweep, --in-trial-logs or --aim-comet")
    if args.sweep and args.no_fast and "tb-all" in args.configs:
        print("note: --no-fast: the sweep's added / floor column needs the optimized floor")
    return args


def run_comparison(args: argparse.Namespace, workdir: str, info: dict[str, Any]) -> list[goals.Goal]:
    """The comparison, the large goal run (``args.large``) and the goals; returns the goals ([] for
    ``--aim-comet``)."""
    names = args.configs + floor_names(args)
    small = comparison.compare(args, workdir, names, args.trials, args.results, not args.no_bridge)
    comparison.write_compare(small, args, info)
    if args.aim_comet:
        return []
    large = None
    if args.large:
        names = list(args.large_configs) + ([] if args.no_fast else [f"fast-{t}" for t in FLOOR_TRACKERS])
        large = comparison.compare(
            args, workdir, names, args.large_trials, args.large_results, bridge=False, title="goal run"
        )
        comparison.write_compare(large, args, info)
    found = goals.evaluate(small["rows"], large["rows"] if large else None, smoke=args.quick)
    print()
    print(goals.report(found), flush=True)
    # The result files of this run, written again with the goals in them.
    for part in (small, large):
        if part is not None:
            comparison.write_compare(part, args, info, goals=found, echo=False)
    sizes = [f"{p['trials']}x{p['results']}" for p in (small, large) if p is not None]
    goals.write_goals(found, args, info, sizes)
    return found


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
            sweep.sweep(args, workdir, info)
        elif args.in_trial_logs:
            write_in_trial(in_trial(args, workdir), args, info)
        else:
            run_comparison(args, workdir, info)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
