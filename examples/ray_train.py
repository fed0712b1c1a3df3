"""A plain Ray Train V2 run (no Tune), tracked with ``TrackBridgeTrainCallback``: rank 0's reported metrics,
the ``train_loop_config`` as parameters, reported checkpoints as artifacts, and the run's end as its status.
Nothing tracker-related runs in the workers. ``DataParallelTrainer`` needs no deep-learning framework; with
PyTorch use ``ray.train.torch.TorchTrainer`` the same way.

    python examples/ray_train.py --workers 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence

import ray.train
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

from trackbridge import TrackBridgeTrainCallback


def train_loop(config: dict) -> None:
    rank = ray.train.get_context().get_world_rank()
    loss = 1.0
    for epoch in range(1, config["epochs"] + 1):
        loss *= 1 - config["lr"]
        checkpoint = None
        if rank == 0 and epoch % 2 == 0:
            d = tempfile.mkdtemp()
            with open(os.path.join(d, "weights.txt"), "w") as f:
                f.write(f"epoch={epoch} loss={loss}\n")
            checkpoint = ray.train.Checkpoint.from_directory(d)
        ray.train.report({"loss": loss, "epoch": epoch}, checkpoint=checkpoint)


def main(storage_path: str, plugins: Sequence[str] = ("mlflow", "tensorboard"), workers: int = 2, epochs: int = 4):
    here = os.getcwd()
    # The callback runs in Train's controller, another process: give the stores absolute places.
    options = {
        "mlflow": {
            "tracking_uri": f"sqlite:///{os.path.join(here, 'mlflow.db')}",
            "artifact_location": os.path.join(here, "mlartifacts"),
            "save_artifact": True,
        },
        "wandb": {"dir": here, "upload_checkpoints": True},
    }
    trainer = DataParallelTrainer(
        train_loop,
        train_loop_config={"lr": 0.1, "epochs": epochs},
        scaling_config=ray.train.ScalingConfig(num_workers=workers),
        run_config=ray.train.RunConfig(
            name="ray-train",
            storage_path=storage_path,
            callbacks=[TrackBridgeTrainCallback(plugins={name: options.get(name, {}) for name in plugins})],
        ),
    )
    return trainer.fit()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", default="mlflow,tensorboard")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--storage-path", default=os.path.abspath("ray_results"))
    args = parser.parse_args()
    print("final metrics:", main(args.storage_path, args.plugins.split(","), args.workers).metrics)
