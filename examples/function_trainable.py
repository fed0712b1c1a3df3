"""A function trainable, tuned by Tune and tracked by several trackers at once, with per-batch values logged
from inside the trial (``trackbridge.log``) and a file it wrote (``trackbridge.log_artifact``).

    python examples/function_trainable.py                          # W&B, MLflow (./mlflow.db), TensorBoard
    python examples/function_trainable.py --plugins mlflow,tensorboard --trials 8

W&B runs offline unless you are logged in (``wandb login``) or set ``WANDB_MODE``; see
``wandb_online_or_offline.py``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from ray import tune

import trackbridge
from trackbridge import TrackBridgeCallback


def train(config: dict) -> None:
    loss = 1.0
    for epoch in range(1, config["epochs"] + 1):
        for _batch in range(config["batches"]):
            loss *= 1 - config["lr"] / 10
            trackbridge.log({"batch_loss": loss})  # its own step axis: 1, 2, 3, ...
        if epoch == config["epochs"]:
            with open("summary.json", "w") as f:  # each trial runs in a directory of its own
                json.dump({"final_loss": loss}, f)
            trackbridge.log_artifact("summary.json")  # stored with the trial's run in every tracker
        tune.report({"loss": loss, "epoch": epoch})


def main(
    storage_path: str, plugins: Sequence[str] = ("wandb", "mlflow", "tensorboard"), trials: int = 4, epochs: int = 5
) -> tune.ResultGrid:
    bridge = TrackBridgeCallback(plugins=list(plugins))
    tuner = tune.Tuner(
        train,
        param_space={"lr": tune.loguniform(1e-3, 1e-1), "epochs": epochs, "batches": 10},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=trials),
        run_config=tune.RunConfig(
            name="function-trainable",
            storage_path=storage_path,
            # companion_callbacks(): e.g. keeps Tune's own TensorBoard logger from writing every value twice
            callbacks=[bridge, *bridge.companion_callbacks()],
        ),
    )
    return tuner.fit()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", default="wandb,mlflow,tensorboard")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--storage-path", default=os.path.abspath("ray_results"))
    args = parser.parse_args()
    grid = main(args.storage_path, args.plugins.split(","), args.trials, args.epochs)
    print("best config:", grid.get_best_result().config)
