"""``trackbridge demo``: a small, real Tune experiment tracked by every installed built-in plugin, offline.

Runs on embedded defaults: no account, no server, no network. W&B writes offline runs, MLflow a SQLite
store, TensorBoard event files, all under one directory, and the demo prints how to open each.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from typing import Sequence

from trackbridge.discovery import installed_plugins, missing_requirements

BUILT_IN = ("wandb", "mlflow", "tensorboard")


def demo_trainable(config: dict) -> None:
    """A toy 'training': a noisy loss that decays at a rate set by the learning rate."""
    from ray import tune

    rng = random.Random(config["seed"])
    loss = 1.0
    for step in range(1, config["steps"] + 1):
        loss = loss * (1 - config["lr"]) + rng.uniform(0, 0.02)
        metrics = {"loss": loss, "accuracy": 1 - loss / 2, "eval": {"loss": loss * 1.1, "perplexity": math.exp(loss)}}
        checkpoint = None
        if step % max(1, config["steps"] // 2) == 0:
            d = tempfile.mkdtemp(prefix="trackbridge-demo-ckpt-")
            with open(os.path.join(d, "model.txt"), "w") as f:
                f.write(f"step={step} loss={loss}\n")
            checkpoint = tune.Checkpoint.from_directory(d)
        tune.report(metrics, checkpoint=checkpoint)


def available_built_ins() -> list[str]:
    found = installed_plugins()
    names = []
    for name in BUILT_IN:
        if name in found:
            try:
                if not missing_requirements(found[name][0].entry_point.load()):
                    names.append(name)
            except Exception:
                pass
    return names


def run_demo(plugins: Sequence[str] | None, trials: int, results: int, directory: str) -> int:
    root = os.path.abspath(directory)
    os.makedirs(root, exist_ok=True)
    # Embedded defaults, overridable from the environment: offline W&B, a local SQLite MLflow store.
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DIR", root)
    os.environ.setdefault("WANDB_PROJECT", "trackbridge-demo")
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{os.path.join(root, 'mlflow.db')}")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

    import ray
    from ray import tune

    from trackbridge.callback import TrackBridgeCallback

    names = list(plugins) if plugins else available_built_ins()
    if not names:
        print('No tracker SDK is installed; install one: pip install "trackbridge[all]"')
        return 1
    print(f"trackbridge demo: {trials} trials x {results} results into {', '.join(names)} under {root}")
    callbacks: list = [TrackBridgeCallback(plugins=names)]
    callback = callbacks[0]
    if "tensorboard" in names:
        # Keep Tune's own TensorBoard logger out, so TensorBoard shows each scalar once (docs/tensorboard.md).
        from trackbridge_tensorboard import SuppressTuneTBXLogger

        callbacks.append(SuppressTuneTBXLogger())
    if not ray.is_initialized():
        ray.init(num_cpus=min(2, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    started = time.monotonic()
    tuner = tune.Tuner(
        demo_trainable,
        param_space={
            "lr": tune.grid_search([0.01 * (i + 1) for i in range(trials)]),
            "seed": 7,
            "steps": results,
            "optimizer": {"name": "sgd", "momentum": 0.9},
        },
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=tune.RunConfig(name="demo", storage_path=os.path.join(root, "ray_results"), callbacks=callbacks, verbose=0),
    )
    grid = tuner.fit()
    elapsed = time.monotonic() - started
    best = grid.get_best_result()
    print(f"\nTuner.fit() took {elapsed:.1f}s; best trial lr={best.config['lr']:.2f} loss={best.metrics['loss']:.4f}")
    report = callback.report or {}
    print("\nDelivered per plugin:")
    for row in report.get("plugins", []):
        print(f"  {row['plugin']:<12} delivered={row['delivered']} failed={row['failed']} dropped={row['dropped']}")
    exp_dir = os.path.join(root, "ray_results", "demo")
    print("\nOpen the results:")
    if "wandb" in names:
        print(f"  W&B (offline runs):  ls {os.environ['WANDB_DIR']}/wandb   # upload with: wandb sync {os.environ['WANDB_DIR']}/wandb/offline-run-*")
    if "mlflow" in names:
        print(f"  MLflow:              mlflow ui --backend-store-uri {os.environ['MLFLOW_TRACKING_URI']}")
    if "tensorboard" in names:
        print(f"  TensorBoard:         tensorboard --logdir {exp_dir}")
    if report.get("path"):
        print(f"  Delivery report:     {report['path']}")
    ok = all(not r["failed"] and not r["dropped"] for r in report.get("plugins", []))
    return 0 if ok and grid.num_errors == 0 else 1
