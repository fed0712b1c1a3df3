"""Resume an interrupted experiment: each tracker continues the same run of every trial, and no step is
stored twice. Interrupt the first run with Ctrl+C (or ``kill -TERM``, as Slurm or Kubernetes would): Tune
saves the experiment, TrackBridge finishes writing what was already reported, and the trials' runs end as
unfinished. ``--resume`` restores the experiment with ``Tuner.restore``; the ``TrackBridgeCallback`` comes back
from ``tuner.pkl`` with its options (API keys are never pickled: they are read from the environment again).

    python examples/resume_after_interruption.py             # press Ctrl+C after a few seconds
    python examples/resume_after_interruption.py --resume    # the trials go on from their checkpoints
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence

from ray import tune

from trackbridge import TrackBridgeCallback

NAME = "resume-after-interruption"


def train(config: dict) -> None:
    step = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d, open(os.path.join(d, "step.json")) as f:
            step = json.load(f)["step"]
    while step < config["steps"]:
        step += 1
        time.sleep(config["seconds_per_step"])
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "step.json"), "w") as f:
                json.dump({"step": step}, f)
            tune.report({"loss": config["lr"] / step}, checkpoint=tune.Checkpoint.from_directory(d))


def main(
    storage_path: str,
    plugins: Sequence[str] = ("mlflow", "tensorboard"),
    resume: bool = False,
    steps: int = 30,
    seconds_per_step: float = 0.5,
) -> tune.ResultGrid:
    if resume:
        # restore the experiment: the trials, their checkpoints and the callbacks, TrackBridge's included
        tuner = tune.Tuner.restore(os.path.join(storage_path, NAME), trainable=train, resume_unfinished=True)
    else:
        bridge = TrackBridgeCallback(plugins=list(plugins))
        tuner = tune.Tuner(
            train,
            param_space={"lr": tune.grid_search([0.1, 0.2]), "steps": steps, "seconds_per_step": seconds_per_step},
            run_config=tune.RunConfig(
                name=NAME, storage_path=storage_path, callbacks=[bridge, *bridge.companion_callbacks()]
            ),
        )
    return tuner.fit()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", default="mlflow,tensorboard")
    parser.add_argument("--resume", action="store_true", help="restore the interrupted experiment and finish it")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seconds-per-step", type=float, default=0.5)
    parser.add_argument("--storage-path", default=os.path.abspath("ray_results"))
    args = parser.parse_args()
    grid = main(args.storage_path, args.plugins.split(","), args.resume, args.steps, args.seconds_per_step)
    print("trials:", {r.path.rsplit("/", 1)[-1]: (r.metrics or {}).get("training_iteration") for r in grid})
