"""Population Based Training: PBT copies a good trial's checkpoint and config into a poor one (an exploit).
Each tracker keeps one run per trial through every exploit: the run goes on, the changed config is recorded,
and steps the trial repeats after taking the other's checkpoint are stored again at their step (see
docs/reliability.md).

    python examples/pbt.py
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence

from ray import tune
from ray.tune.schedulers import PopulationBasedTraining

from trackbridge import TrackBridgeCallback


def train(config: dict) -> None:
    step, score = 0, 0.0
    checkpoint = tune.get_checkpoint()
    if checkpoint:  # after an exploit: continue from the better trial's state
        with checkpoint.as_directory() as d, open(os.path.join(d, "state.json")) as f:
            state = json.load(f)
        step, score = state["step"], state["score"]
    while step < config["steps"]:
        step += 1
        score += config["lr"] * (1 - score)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"step": step, "score": score}, f)
            tune.report({"score": score, "lr": config["lr"]}, checkpoint=tune.Checkpoint.from_directory(d))


def main(storage_path: str, plugins: Sequence[str] = ("mlflow", "tensorboard"), trials: int = 4, steps: int = 12):
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=4,
        hyperparam_mutations={"lr": tune.uniform(0.01, 0.5)},
    )
    bridge = TrackBridgeCallback(plugins=list(plugins))
    tuner = tune.Tuner(
        train,
        param_space={"lr": tune.uniform(0.01, 0.5), "steps": steps},
        tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=trials, scheduler=pbt),
        run_config=tune.RunConfig(
            name="pbt",
            storage_path=storage_path,
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
