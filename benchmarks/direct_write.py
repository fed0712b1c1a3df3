"""The direct-write floors: the workload's values written straight to one tracker with its own API.

    python -m benchmarks.direct_write --tracker mlflow --root DIR --trials 16 --results 2000 --out r.json
    python -m benchmarks.direct_write --fast --tracker mlflow --root DIR --trials 16 --results 2000 --out r.json

No Tune, no Ray, no TrackBridge: one tracker, trial after trial, the same values as the workload's
(``benchmarks.workload.metric_value``). Two ways of writing them:

- naive (``direct-<tracker>`` in the tables), the way a user writing to the tracker by hand would: MLflow
  ``MlflowClient.log_batch`` per result (12 metrics a call) on a fresh SQLite file, tensorboardX
  ``SummaryWriter.add_scalar`` per value, W&B ``run.log`` per result offline with W&B's default settings;
- optimized (``--fast``, ``fast-<tracker>``), each tracker's fastest public API: MLflow ``log_batch`` with
  1000 metrics a call (MLflow's limit per call) on a fresh SQLite file; tensorboardX one event per step
  holding all the step's scalars (one ``Summary`` proto with a value per metric, ``FileWriter.add_summary``);
  W&B one ``run.log`` per step offline, with system metrics sampling and console capture off (the settings
  TrackBridge's wandb plugin uses). The sum of the three optimized times is the floor the goals compare
  TrackBridge's added time with.

The child's JSON has ``fit_seconds``: the writing alone, from the first run created to the last closed (the
SDK import, timed apart as ``import_seconds``, is not part of it: a user's script pays it once, Tune or
not). The store layout is the one ``benchmarks.configs`` uses, so ``benchmarks.verify`` reads it back the
same way as the Tune configurations' stores.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from typing import Any

from benchmarks.workload import CHILD_ENV, NUM_METRICS, metric_names, metric_value

TRACKERS = ("mlflow", "tensorboard", "wandb")
#: How each optimized writer writes, for the tables.
FAST_HOW = {
    "mlflow": "log_batch of 1000 metrics",
    "tensorboard": "one event of all scalars per step",
    "wandb": "one run.log per step",
}
#: MLflow's limit of metrics per ``log_batch`` call (``mlflow.utils.validation.MAX_METRICS_PER_BATCH``).
MLFLOW_BATCH = 1000
#: W&B settings of the optimized writer: TrackBridge's wandb plugin's defaults. ``x_disable_stats`` is an
#: experimental (``x_``) setting; it is used because the plugin uses it, so both write the same things.
FAST_WANDB_SETTINGS = {"console": "off", "x_disable_stats": True, "quiet": True}


def _mlflow(root: str, trials: int, results: int, names: list[str]) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from benchmarks import configs

    client = MlflowClient(tracking_uri=configs.mlflow_uri(root))
    experiment_id = client.create_experiment("bench")
    for t in range(trials):
        run = client.create_run(experiment_id, run_name=f"trial_{t}")
        run_id = run.info.run_id
        for step in range(1, results + 1):
            now = int(time.time() * 1000)
            client.log_batch(
                run_id, metrics=[Metric(name, metric_value(step, k), now, step) for k, name in enumerate(names)]
            )
        client.set_terminated(run_id)


def _tensorboard(root: str, trials: int, results: int, names: list[str]) -> None:
    from tensorboardX import SummaryWriter

    for t in range(trials):
        writer = SummaryWriter(os.path.join(root, "tensorboard", f"trial_{t}"))
        for step in range(1, results + 1):
            for k, name in enumerate(names):
                writer.add_scalar(name, metric_value(step, k), global_step=step)
        writer.close()


def _wandb(root: str, trials: int, results: int, names: list[str]) -> None:
    import wandb

    from benchmarks import configs

    directory = configs.wandb_dir(root)
    os.makedirs(directory, exist_ok=True)
    for t in range(trials):
        run = wandb.init(project="bench", mode="offline", dir=directory, name=f"trial_{t}", reinit="create_new")
        for step in range(1, results + 1):
            run.log({name: metric_value(step, k) for k, name in enumerate(names)}, step=step)
        run.finish()


def _fast_mlflow(root: str, trials: int, results: int, names: list[str]) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from benchmarks import configs

    client = MlflowClient(tracking_uri=configs.mlflow_uri(root))
    experiment_id = client.create_experiment("bench")
    for t in range(trials):
        run_id = client.create_run(experiment_id, run_name=f"trial_{t}").info.run_id
        batch: list[Any] = []
        for step in range(1, results + 1):
            now = int(time.time() * 1000)
            batch.extend(Metric(name, metric_value(step, k), now, step) for k, name in enumerate(names))
            while len(batch) >= MLFLOW_BATCH:
                client.log_batch(run_id, metrics=batch[:MLFLOW_BATCH])
                del batch[:MLFLOW_BATCH]
        if batch:
            client.log_batch(run_id, metrics=batch)
        client.set_terminated(run_id)


def _fast_tensorboard(root: str, trials: int, results: int, names: list[str]) -> None:
    # Public API only: ``tensorboardX.FileWriter`` (exported by the package) writes an event holding a whole
    # ``Summary`` proto; ``tensorboardX.proto.summary_pb2`` is the proto module tensorboardX's own ``summary``
    # helpers build it with (``SummaryWriter.add_scalar`` writes one such event per value).
    from tensorboardX import FileWriter
    from tensorboardX.proto.summary_pb2 import Summary

    for t in range(trials):
        writer = FileWriter(os.path.join(root, "tensorboard", f"trial_{t}"))
        for step in range(1, results + 1):
            values = [Summary.Value(tag=name, simple_value=metric_value(step, k)) for k, name in enumerate(names)]
            writer.add_summary(Summary(value=values), global_step=step)
        writer.close()


def _fast_wandb(root: str, trials: int, results: int, names: list[str]) -> None:
    import wandb

    from benchmarks import configs

    directory = configs.wandb_dir(root)
    os.makedirs(directory, exist_ok=True)
    settings = wandb.Settings(**FAST_WANDB_SETTINGS)
    for t in range(trials):
        run = wandb.init(
            project="bench", mode="offline", dir=directory, name=f"trial_{t}", reinit="create_new", settings=settings
        )
        for step in range(1, results + 1):
            run.log({name: metric_value(step, k) for k, name in enumerate(names)}, step=step)
        run.finish()


WRITERS = {"mlflow": _mlflow, "tensorboard": _tensorboard, "wandb": _wandb}
FAST_WRITERS = {"mlflow": _fast_mlflow, "tensorboard": _fast_tensorboard, "wandb": _fast_wandb}


def run(tracker: str, root: str, trials: int, results: int, metrics: int, fast: bool = False) -> dict[str, Any]:
    """Write ``trials`` x ``results`` x ``metrics`` values to ``tracker`` under ``root`` (``fast``: with the
    optimized writer); the time it took, or the error."""
    names = metric_names(metrics)
    os.makedirs(root, exist_ok=True)
    out: dict[str, Any] = {"config": f"{'fast' if fast else 'direct'}-{tracker}"}
    # The SDK import is not part of the floor (a user's script pays it once, Tune or not).
    started_import = time.perf_counter()
    __import__({"mlflow": "mlflow", "tensorboard": "tensorboardX", "wandb": "wandb"}[tracker])
    out["import_seconds"] = time.perf_counter() - started_import
    try:
        started = time.perf_counter()
        (FAST_WRITERS if fast else WRITERS)[tracker](root, trials, results, names)
        out["fit_seconds"] = time.perf_counter() - started
        out["ok"] = True
    except BaseException as exc:
        out["ok"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()[-4000:]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracker", choices=TRACKERS, required=True)
    parser.add_argument("--fast", action="store_true", help="the optimized writer (each tracker's fastest API)")
    parser.add_argument("--root", required=True)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--results", type=int, default=200)
    parser.add_argument("--metrics", type=int, default=NUM_METRICS)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    for key, value in CHILD_ENV.items():
        os.environ.setdefault(key, value)
    result = run(args.tracker, args.root, args.trials, args.results, args.metrics, args.fast)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
