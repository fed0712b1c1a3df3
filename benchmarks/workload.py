"""The benchmark's Tune workload, and the child process that runs it under one configuration.

    python -m benchmarks.workload --config trackbridge-all --root DIR --trials 4 --results 200 --out r.json

``compare.py`` starts one such child per configuration and repetition, so every configuration gets a fresh
Ray instance, fresh tracker stores under ``DIR`` and its own process tree (whose memory the parent samples).
The child writes what it measured as JSON; it never verifies the stores itself (the parent does, after the
child and everything it started have exited, so the files are complete).

The trainable reports ``NUM_METRICS`` floats per step. Metric ``k`` at step ``s`` is ``s + k/16``: exact in
float32 and float64, so a reader can tell from any stored value which step it belongs to, and the
verification checks values, not only counts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import traceback
from typing import Any

NUM_METRICS = 12

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


def trainable(config: dict[str, Any]) -> None:
    """Reports ``results`` steps of ``metrics`` floats; a tiny checkpoint every ``checkpoint_every`` steps."""
    from ray import tune

    names = metric_names(config["metrics"])
    every = int(config["checkpoint_every"] or 0)
    work = float(config.get("work", 0.0))
    for step in range(1, config["results"] + 1):
        if work:
            time.sleep(work)
        metrics = {name: metric_value(step, k) for k, name in enumerate(names)}
        if every and step % every == 0:
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "state.json"), "w") as f:
                    json.dump({"step": step}, f)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report(metrics)


def _loop_timer():
    """A callback (listed first) recording when Tune's loop ended, before the other callbacks' end work."""
    from ray import tune

    class LoopTimer(tune.Callback):
        def __init__(self) -> None:
            self.ended: float | None = None

        def on_experiment_end(self, trials, **info):  # noqa: ANN001
            self.ended = time.perf_counter()

    return LoopTimer()


def run(
    config_name: str, root: str, trials: int, results: int, metrics: int, checkpoint_every: int, cpus: int, work: float
) -> dict[str, Any]:
    """Run the workload once under ``config_name``; return timings and the callbacks' own numbers."""
    import ray
    from ray import tune

    from benchmarks import configs

    os.makedirs(root, exist_ok=True)
    storage = os.path.join(root, "tune")
    started_init = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    init_seconds = time.perf_counter() - started_init
    out: dict[str, Any] = {"config": config_name, "ray_init_seconds": init_seconds}
    try:
        callbacks = configs.build(config_name, root)
        timer = _loop_timer()
        tuner = tune.Tuner(
            trainable,
            param_space={
                "x": tune.grid_search(list(range(trials))),
                "results": results,
                "metrics": metrics,
                "checkpoint_every": checkpoint_every,
                "work": work,
            },
            run_config=tune.RunConfig(
                name="bench",
                storage_path=storage,
                callbacks=[timer, *callbacks],
                verbose=0,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            ),
        )
        started = time.perf_counter()
        grid = tuner.fit()
        ended = time.perf_counter()
        out["fit_seconds"] = ended - started
        out["loop_seconds"] = (timer.ended or ended) - started
        out["trial_errors"] = [str(r.error)[:500] for r in grid if r.error is not None]
        # Per result, the time Tune's thread spent in all of this configuration's callbacks together.
        per_callback = [list(getattr(cb, "bench_result_ns", []) or []) for cb in callbacks]
        per_callback = [calls for calls in per_callback if calls]
        stalls: list[int] = [sum(t) for t in zip(*per_callback, strict=False)] if per_callback else []
        for cb in callbacks:
            report = getattr(cb, "report", None)
            if isinstance(report, dict):
                out["trackbridge_report"] = {
                    "drain_seconds": report.get("drain_seconds"),
                    "plugins": report.get("plugins"),
                }
        out["callback_calls"] = len(stalls)
        if stalls:
            stalls.sort()
            out["stall_ms_median"] = statistics.median(stalls) / 1e6
            out["stall_ms_p99"] = stalls[min(len(stalls) - 1, int(0.99 * len(stalls)))] / 1e6
            out["stall_ms_max"] = stalls[-1] / 1e6
            out["stall_ms_total"] = sum(stalls) / 1e6
        out["ok"] = True
    except BaseException as exc:  # report, never hide: the parent marks the configuration FAILED
        out["ok"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()[-4000:]
    finally:
        try:
            ray.shutdown()
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
    parser.add_argument("--cpus", type=int, default=4)
    parser.add_argument("--work", type=float, default=0.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    for key, value in CHILD_ENV.items():
        os.environ.setdefault(key, value)
    result = run(
        args.config, args.root, args.trials, args.results, args.metrics, args.checkpoint_every, args.cpus, args.work
    )
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    # Leave quickly: atexit hooks of trackers have run in fit(); anything still alive is not ours to wait for.


if __name__ == "__main__":
    main()
