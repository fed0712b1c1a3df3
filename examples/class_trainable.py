"""A class trainable (``tune.Trainable``): ``step()`` returns each result; values from inside the trial go
through a logger taken in ``setup()`` (``trackbridge.get_logger(self)``); checkpoints are saved and stored
as artifacts where asked (MLflow ``save_artifact``, W&B ``upload_checkpoints``).

    python examples/class_trainable.py
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from ray import tune

import trackbridge
from trackbridge import TrackBridgeCallback


class Quadratic(tune.Trainable):
    """Gradient descent on (x - 3)^2."""

    def setup(self, config: dict) -> None:
        self.x = 0.0
        self.lr = config["lr"]
        self.logger = trackbridge.get_logger(self)  # class trainables take their logger here

    def step(self) -> dict:
        gradient = 2 * (self.x - 3)
        self.x -= self.lr * gradient
        self.logger.log({"gradient": gradient})
        return {"loss": (self.x - 3) ** 2, "x": self.x}

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        with open(os.path.join(checkpoint_dir, "x.txt"), "w") as f:
            f.write(repr(self.x))

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        with open(os.path.join(checkpoint_dir, "x.txt")) as f:
            self.x = float(f.read())


def main(storage_path: str, plugins: Sequence[str] = ("mlflow", "tensorboard"), trials: int = 3, steps: int = 10):
    options = {"mlflow": {"save_artifact": True}, "wandb": {"upload_checkpoints": True}}
    bridge = TrackBridgeCallback(plugins={name: options.get(name, {}) for name in plugins})
    tuner = tune.Tuner(
        Quadratic,
        param_space={"lr": tune.uniform(0.01, 0.3)},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=trials),
        run_config=tune.RunConfig(
            name="class-trainable",
            storage_path=storage_path,
            stop={"training_iteration": steps},
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=5, checkpoint_at_end=True),
            callbacks=[bridge, *bridge.companion_callbacks()],
        ),
    )
    return tuner.fit()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", default="mlflow,tensorboard")
    parser.add_argument("--storage-path", default=os.path.abspath("ray_results"))
    args = parser.parse_args()
    print("best config:", main(args.storage_path, args.plugins.split(",")).get_best_result().config)
