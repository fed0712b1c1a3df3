"""A Tune driver that is interrupted: by SIGINT (``sigint``) or by ``sys.exit`` from inside fit() (``exit``).

Its plugin appends every hook call to a JSON-lines file (argv[2]) so the parent test can read what was
delivered after this process is gone.
"""

import json
import os
import sys
import time

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402

from trackbridge import TrackBridgeCallback, hookimpl  # noqa: E402

MODE, EVENTS = sys.argv[1], sys.argv[2]  # MODE: sigint | exit | sigint_isolated


class FileRecorder:
    name = "file_recorder"

    def __init__(self, path, sleep=0.0):
        self.path, self.sleep = path, sleep

    def _write(self, *event):
        if self.sleep:
            time.sleep(self.sleep)
        with open(self.path, "a") as f:
            f.write(json.dumps(event) + "\n")

    @hookimpl
    def trackbridge_trial_start(self, trial, resumed):
        self._write("trial_start", trial.trial_id, resumed)

    @hookimpl
    def trackbridge_trial_result(self, trial, step):
        self._write("result", trial.trial_id, step)

    @hookimpl
    def trackbridge_trial_complete(self, trial, status):
        self._write("complete", trial.trial_id, status.value)

    @hookimpl
    def trackbridge_experiment_end(self, experiment):
        self._write("experiment_end", experiment.name)


class ExitFromDriver(tune.Callback):
    """Stands in for a driver that dies without Tune's cleanup (sys.exit deep inside fit())."""

    def __init__(self):
        self.seen = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen[trial.trial_id] = result["training_iteration"]
        if len(self.seen) == 2 and min(self.seen.values()) >= 3:  # both trials are well under way
            sys.exit(3)


def trainable(config):
    for i in range(200):
        time.sleep(0.05)
        tune.report({"v": float(i)})


if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    callbacks = [TrackBridgeCallback(plugins=[FileRecorder(EVENTS, sleep=0.02)], isolate=MODE.endswith("isolated"))]
    if MODE == "exit":
        callbacks.append(ExitFromDriver())
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(name=f"interrupt_{MODE}", storage_path=sys.argv[3], callbacks=callbacks, verbose=0),
    )
    print("READY", flush=True)
    tuner.fit()
    print("FIT RETURNED", flush=True)
