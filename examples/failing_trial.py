"""A trial that fails: Tune retries it once (``FailureConfig(max_failures=1)``; with no checkpoint it starts
again at step 1), it fails again, and every tracker shows one run for it, marked failed with the error's
text, holding steps 1 and 2 once each (the retry's repeated steps are not sent again), while the other trial
completes. Tuning goes on; ``fit()`` returns and ``ResultGrid.errors`` holds the error.

    python examples/failing_trial.py
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from ray import tune

from trackbridge import TrackBridgeCallback


def train(config: dict) -> None:
    for step in range(1, 6):
        if config["broken"] and step == 3:
            raise ValueError("the data loader ran out of data (on purpose, in this example)")
        tune.report({"loss": 1 / step})


def main(storage_path: str, plugins: Sequence[str] = ("mlflow", "tensorboard")) -> tune.ResultGrid:
    bridge = TrackBridgeCallback(plugins=list(plugins))
    tuner = tune.Tuner(
        train,
        param_space={"broken": tune.grid_search([False, True])},
        run_config=tune.RunConfig(
            name="failing-trial",
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=1),
            callbacks=[bridge, *bridge.companion_callbacks()],
        ),
    )
    return tuner.fit()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", default="mlflow,tensorboard")
    parser.add_argument("--storage-path", default=os.path.abspath("ray_results"))
    args = parser.parse_args()
    grid = main(args.storage_path, args.plugins.split(","))
    print(f"{len(grid.errors)} trial(s) failed:", *(str(e).splitlines()[0] for e in grid.errors))
