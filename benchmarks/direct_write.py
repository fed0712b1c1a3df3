"""The direct-write floor: the workload's values written straight to one tracker with its own API.

    python -m benchmarks.direct_write --tracker mlflow --root DIR --trials 16 --results 2000 --out r.json

No Tune, no Ray, no TrackBridge: trial after trial, result after result, the way a user writing to the
tracker by hand would (MLflow ``log_batch`` per result on a fresh SQLite file, tensorboardX ``add_scalar``
per value, ``run.log`` per result offline). This is what the trackers cost when nothing overlaps them with
the training; TrackBridge's added time at scale is compared with it. The store layout is the one
``benchmarks.configs`` uses, so ``benchmarks.verify`` checks it the same way.
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


WRITERS = {"mlflow": _mlflow, "tensorboard": _tensorboard, "wandb": _wandb}


def run(tracker: str, root: str, trials: int, results: int, metrics: int) -> dict[str, Any]:
    names = metric_names(metrics)
    os.makedirs(root, exist_ok=True)
    out: dict[str, Any] = {"config": f"direct-{tracker}"}
    # The SDK import is not part of the floor (a user's script pays it once, Tune or not).
    started_import = time.perf_counter()
    __import__({"mlflow": "mlflow", "tensorboard": "tensorboardX", "wandb": "wandb"}[tracker])
    out["import_seconds"] = time.perf_counter() - started_import
    try:
        started = time.perf_counter()
        WRITERS[tracker](root, trials, results, names)
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
    parser.add_argument("--root", required=True)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--results", type=int, default=200)
    parser.add_argument("--metrics", type=int, default=NUM_METRICS)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    for key, value in CHILD_ENV.items():
        os.environ.setdefault(key, value)
    result = run(args.tracker, args.root, args.trials, args.results, args.metrics)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
