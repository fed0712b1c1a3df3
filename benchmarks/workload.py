"""The benchmark's Tune workload, and the child process that runs it under one configuration.

    python -m benchmarks.workload --config tb-all --root DIR --trials 4 --results 200 --cpus 2 --out r.json

``benchmarks.compare`` starts one such child per configuration and repetition, so every configuration gets a
fresh Ray instance (``benchmarks.ray_start``: one node with ``--cpus`` logical CPUs, or with
``--cluster-cpus-per-node N`` a 2-node cluster), fresh tracker stores under ``DIR`` and its own process tree
(whose memory the parent samples). The child writes what it measured as JSON; it never verifies the stores
itself (the parent does, after the child and everything it started have exited, so the files are complete).

Only the configuration's callbacks are passed to Tune, plus, when there is at least one, a first callback
that notes when Tune's loop ended (``loop_seconds``). The ``none`` configuration passes no callback at all:
with any callback Ray's usage telemetry imports ``mlflow`` and ``wandb`` into the driver (``none-callback``
is that baseline).

The trainable reports ``NUM_METRICS`` floats per step. Metric ``k`` at step ``s`` is ``s + k/16``: exact in
float32 and float64, so a reader can tell from any stored value which step it belongs to, and the
verification checks values, not only counts.

In-trial logging (``--in-trial-logs N``): before each ``tune.report`` the trainable calls
``trackbridge.log({"in00": ..., "in01": ..., "in02": ...})`` N times, without ``step=`` (TrackBridge counts
the calls: in-trial step ``i`` = 1, 2, ... R*N), in-trial metric ``k`` at step ``i`` being ``i + k/16``
(``in_trial_value``). Each call is timed on the worker with ``time.perf_counter()``; each trial writes its
timings to ``<root>/in_trial/<trial id>.json`` when it ends, and the child's JSON carries the median, p99
and max over all calls of all trials. With ``--no-in-trial-call`` (the baseline) the trainable runs the
same loop, builds the same dicts and times the same slot, but calls a function that does nothing instead
of ``trackbridge.log`` (and never imports ``trackbridge``): its timings are the timer's own floor.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import tempfile
import time
import traceback
from typing import Any

NUM_METRICS = 12
#: Metrics per ``trackbridge.log`` call of the in-trial case.
IN_TRIAL_METRICS = 3

#: Environment of every benchmark child: only the configured callbacks run (no auto CSV/JSON/TBX loggers),
#: W&B offline and quiet, Ray's progress output off (the same for every configuration).
CHILD_ENV: dict[str, str] = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_DISABLE_GIT": "true",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "0",
    "TUNE_MAX_PENDING_TRIALS_PG": "16",
}


def metric_names(num_metrics: int = NUM_METRICS) -> list[str]:
    return [f"m{k:02d}" for k in range(num_metrics)]


def metric_value(step: int, k: int) -> float:
    """The value metric ``k`` has at ``step``; unique per step, exactly representable."""
    return float(step) + k / 16.0


def in_trial_names(num_metrics: int = IN_TRIAL_METRICS) -> list[str]:
    return [f"in{k:02d}" for k in range(num_metrics)]


def in_trial_value(step: int, k: int) -> float:
    """The value in-trial metric ``k`` has at in-trial step ``step`` (exact in float32 below 2**20 steps)."""
    return float(step) + k / 16.0


def _no_call(values: dict[str, Any]) -> None:
    """The baseline's stand-in for ``trackbridge.log``: the same call slot, no work."""
    return None


def trainable(config: dict[str, Any]) -> None:
    """Reports ``results`` steps of ``metrics`` floats; a tiny checkpoint every ``checkpoint_every`` steps.

    With ``in_trial_logs`` N > 0: N timed ``trackbridge.log`` calls before each report (see the module
    docstring), or, with ``in_trial_call`` False, N timed calls of a function that does nothing."""
    from ray import tune

    names = metric_names(config["metrics"])
    every = int(config["checkpoint_every"] or 0)
    work = float(config.get("work", 0.0))
    logs = int(config.get("in_trial_logs", 0) or 0)
    log: Any = _no_call
    if logs and config.get("in_trial_call", True):
        import trackbridge

        log = trackbridge.log
    inner = in_trial_names()
    clock = time.perf_counter
    seconds: list[float] = []
    started = clock()
    for step in range(1, config["results"] + 1):
        if work:
            time.sleep(work)
        for j in range(logs):
            i = (step - 1) * logs + j + 1
            values = {name: in_trial_value(i, k) for k, name in enumerate(inner)}
            t0 = clock()
            log(values)
            seconds.append(clock() - t0)
        metrics = {name: metric_value(step, k) for k, name in enumerate(names)}
        if every and step % every == 0:
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "state.json"), "w") as f:
                    json.dump({"step": step}, f)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report(metrics)
    if logs:
        trial_id = tune.get_context().get_trial_id()
        path = os.path.join(config["timings_dir"], f"{trial_id}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"trial_id": trial_id, "trial_seconds": clock() - started, "call_seconds": seconds}, f)
        os.replace(path + ".tmp", path)


def in_trial_summary(timings_dir: str, trials: int, logs: int, results: int) -> dict[str, Any]:
    """Median, p99 and max over every timed call of every trial (microseconds), from the trials' files."""
    per_trial = []
    for path in sorted(glob.glob(os.path.join(timings_dir, "*.json"))):
        with open(path, encoding="utf-8") as f:
            per_trial.append(json.load(f))
    calls = sorted(s for data in per_trial for s in data["call_seconds"])
    out: dict[str, Any] = {
        "trials_reporting": len(per_trial),
        "calls": len(calls),
        "expected_calls": trials * results * logs,
    }
    if calls:
        # The first call of a trial finds the inbox actor and registers its sender (two Ray round trips):
        # shown on its own, and the max of the other calls too.
        firsts = [d["call_seconds"][0] for d in per_trial if d["call_seconds"]]
        later = [s for d in per_trial for s in d["call_seconds"][1:]]
        shares = [sum(d["call_seconds"]) / d["trial_seconds"] for d in per_trial if d["trial_seconds"]]
        out.update(
            call_us_median=statistics.median(calls) * 1e6,
            call_us_p99=calls[min(len(calls) - 1, int(0.99 * len(calls)))] * 1e6,
            call_us_max=calls[-1] * 1e6,
            call_us_mean=statistics.fmean(calls) * 1e6,
            first_call_ms_median=statistics.median(firsts) * 1e3,
            later_call_ms_max=max(later, default=0.0) * 1e3,
            share_of_trial_median=statistics.median(shares) if shares else None,
        )
    return out


def _loop_timer() -> Any:
    """A callback (listed first) recording when Tune's loop ended, before the other callbacks' end work."""
    from ray import tune

    class LoopTimer(tune.Callback):
        def __init__(self) -> None:
            self.ended: float | None = None

        def on_experiment_end(self, trials, **info):  # noqa: ANN001
            self.ended = time.perf_counter()

    return LoopTimer()


def run(
    config_name: str,
    root: str,
    trials: int,
    results: int,
    metrics: int,
    checkpoint_every: int,
    cpus: int,
    work: float,
    in_trial_logs: int = 0,
    in_trial_call: bool = True,
    cluster_cpus_per_node: int = 0,
) -> dict[str, Any]:
    """Run the workload once under ``config_name``; return timings and the callbacks' own numbers.

    ``cluster_cpus_per_node`` N > 0: on a 2-node cluster of N logical CPUs per node (``cpus`` unused)."""
    from ray import tune

    from benchmarks import configs
    from benchmarks.ray_start import start_ray

    os.makedirs(root, exist_ok=True)
    storage = os.path.join(root, "tune")
    # Tune starts at most this many trials' placement groups at once; let every trial run concurrently.
    if trials > int(os.environ.get("TUNE_MAX_PENDING_TRIALS_PG", "16")):
        os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(trials)
    started_init = time.perf_counter()
    stop_ray, nodes = start_ray(cpus, cluster_cpus_per_node)
    init_seconds = time.perf_counter() - started_init
    out: dict[str, Any] = {"config": config_name, "ray_init_seconds": init_seconds, "nodes": nodes}
    param_space: dict[str, Any] = {
        "x": tune.grid_search(list(range(trials))),
        "results": results,
        "metrics": metrics,
        "checkpoint_every": checkpoint_every,
        "work": work,
    }
    timings_dir = os.path.join(root, "in_trial")
    if in_trial_logs:
        os.makedirs(timings_dir, exist_ok=True)
        param_space.update(in_trial_logs=in_trial_logs, in_trial_call=in_trial_call, timings_dir=timings_dir)
    try:
        callbacks = configs.build(config_name, root)
        timer = _loop_timer() if callbacks else None  # `none`: no callback at all (see the module docstring)
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            run_config=tune.RunConfig(
                name="bench",
                storage_path=storage,
                callbacks=[timer, *callbacks] if timer else None,
                verbose=0,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            ),
        )
        started = time.perf_counter()
        grid = tuner.fit()
        ended = time.perf_counter()
        out["fit_seconds"] = ended - started
        out["loop_seconds"] = ((timer.ended if timer else None) or ended) - started
        out["trial_errors"] = [str(r.error)[:500] for r in grid if r.error is not None]
        out.update(configs.callback_numbers(callbacks))
        if in_trial_logs:
            out["in_trial"] = in_trial_summary(timings_dir, trials, in_trial_logs, results)
            out["in_trial"]["called"] = in_trial_call
        out["ok"] = True
    except BaseException as exc:  # report, never hide: the parent marks the configuration FAILED
        out["ok"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()[-4000:]
    finally:
        try:
            stop_ray()
        except Exception:
            pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--results", type=int, default=200)
    parser.add_argument("--metrics", type=int, default=NUM_METRICS)
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--cpus", type=int, default=2, help="Ray's logical CPUs (one node)")
    parser.add_argument(
        "--cluster-cpus-per-node", type=int, default=0, help="N > 0: a 2-node Ray cluster of N logical CPUs each"
    )
    parser.add_argument("--work", type=float, default=0.0)
    parser.add_argument("--in-trial-logs", type=int, default=0, help="trackbridge.log calls per result")
    parser.add_argument(
        "--no-in-trial-call", action="store_true", help="the baseline: the same loop, a do-nothing function called"
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    for key, value in CHILD_ENV.items():
        os.environ.setdefault(key, value)
    result = run(
        args.config,
        args.root,
        args.trials,
        args.results,
        args.metrics,
        args.checkpoint_every,
        args.cpus,
        args.work,
        args.in_trial_logs,
        not args.no_in_trial_call,
        args.cluster_cpus_per_node,
    )
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    # Leave quickly: atexit hooks of trackers have run in fit(); anything still alive is not ours to wait for.


if __name__ == "__main__":
    main()
