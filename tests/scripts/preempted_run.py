"""A Tune driver tracked into W&B (offline), MLflow (SQLite) and TensorBoard, to be preempted and restored.

``python preempted_run.py fresh BASE``: 2 trials x 40 steps (a checkpoint every 5 steps); each trial appends
its step to ``BASE/progress-<x>`` so the test knows when to send SIGTERM or SIGKILL to this process.
``python preempted_run.py restore BASE``: ``Tuner.restore`` of that experiment, run to the end.
"""

import os
import sys
import time

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import ray  # noqa: E402
from ray import tune  # noqa: E402

from trackbridge import TrackBridgeCallback  # noqa: E402

MODE, BASE = sys.argv[1], sys.argv[2]
STEPS, CHECKPOINT_EVERY = 40, 5
NAME = "preempted"


def trainable(config):
    import tempfile

    # Both trials run side by side (on a busy machine one could otherwise finish before the other starts, and
    # the signal would find one trial done and its run perhaps not yet finished by the tracker).
    open(os.path.join(BASE, f"started-{config['x']}"), "w").close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(os.path.exists(os.path.join(BASE, f"started-{x}")) for x in (1, 2)):
        time.sleep(0.05)
    step = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d, open(os.path.join(d, "step")) as f:
            step = int(f.read())
    while step < STEPS:
        step += 1
        time.sleep(0.15)
        with open(os.path.join(BASE, f"progress-{config['x']}"), "a") as f:
            f.write(f"{step}\n")
        if step % CHECKPOINT_EVERY == 0:
            d = tempfile.mkdtemp()
            with open(os.path.join(d, "step"), "w") as f:
                f.write(str(step))
            tune.report({"loss": 1.0 / step, "x": float(config["x"])}, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report({"loss": 1.0 / step, "x": float(config["x"])})


def callback() -> TrackBridgeCallback:
    plugins = {
        "wandb": {"project": "preempted", "dir": os.path.join(BASE, "wandb")},
        "mlflow": {"tracking_uri": f"sqlite:///{BASE}/mlflow.db", "experiment_name": NAME},
        "tensorboard": {"logdir": os.path.join(BASE, "tb")},
        "aim": {"repo": os.path.join(BASE, "aim")},
    }
    chosen = sys.argv[3].split(",") if len(sys.argv) > 3 else list(plugins)
    return TrackBridgeCallback(plugins={name: plugins[name] for name in chosen})


if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    storage = os.path.join(BASE, "ray")
    if MODE == "fresh":
        tuner = tune.Tuner(
            trainable,
            param_space={"x": tune.grid_search([1, 2])},
            run_config=tune.RunConfig(
                name=NAME, storage_path=storage, callbacks=[] if sys.argv[3:] == ["none"] else [callback()], verbose=0
            ),
        )
    else:
        tuner = tune.Tuner.restore(os.path.join(storage, NAME), trainable, resume_unfinished=True)
    print("READY", flush=True)
    tuner.fit()
    print("FIT RETURNED", flush=True)
