"""``trackbridge demo``: a small, real Tune experiment tracked by every installed plugin, offline.

Runs on embedded defaults: no account, no server, no network. Each plugin says how it runs that way
(``TrackerPlugin.offline_options``: W&B offline runs, an MLflow SQLite store, TensorBoard event files, all
under one directory) and how to look at what it stored (``view_command``); the demo knows no tracker.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from trackbridge.discovery import load_target, usable_plugin_names


def demo_trainable(config: dict[str, Any]) -> None:
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


def _offline_options(name: str, directory: str) -> dict[str, Any]:
    hint = getattr(load_target(name), "offline_options", None)
    return dict(hint(directory)) if callable(hint) else {}


def run_demo(plugins: Sequence[str] | None, trials: int, results: int, directory: str) -> int:
    root = os.path.abspath(directory)
    os.makedirs(root, exist_ok=True)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

    import ray
    from ray import tune

    from trackbridge.callback import TrackBridgeCallback

    names = list(plugins) if plugins else usable_plugin_names()
    if not names:
        print('No tracker SDK is installed; install one: pip install "trackbridge[all]"')
        return 1
    print(f"trackbridge demo: {trials} trials x {results} results into {', '.join(names)} under {root}")
    callback = TrackBridgeCallback(plugins={name: _offline_options(name, root) for name in names})
    # e.g. the TensorBoard plugin's: keeps Tune's own TensorBoard logger from writing every scalar twice
    callbacks: list[Any] = [callback, *callback.companion_callbacks()]
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
        run_config=tune.RunConfig(
            name="demo", storage_path=os.path.join(root, "ray_results"), callbacks=callbacks, verbose=0
        ),
    )
    grid = tuner.fit()
    elapsed = time.monotonic() - started
    best = grid.get_best_result()
    best_config, best_metrics = best.config or {}, best.metrics or {}
    print(f"\nTuner.fit() took {elapsed:.1f}s; best trial lr={best_config['lr']:.2f} loss={best_metrics['loss']:.4f}")
    report: dict[str, Any] = callback.report or {}
    print("\nDelivered per plugin:")
    for row in report.get("plugins", []):
        print(f"  {row['plugin']:<12} delivered={row['delivered']} failed={row['failed']} dropped={row['dropped']}")
    print("\nOpen the results:")
    experiment = _experiment_of(grid)
    for name in names:
        view = getattr(callback.get_plugin(name), "view_command", None)
        command = view(experiment) if callable(view) else None
        if command:
            print(f"  {name + ':':<20} {command}")
    if report.get("path"):
        print(f"  {'delivery report:':<20} {report['path']}")
    ok = all(not r["failed"] and not r["dropped"] for r in report.get("plugins", []))
    return 0 if ok and grid.num_errors == 0 else 1


def _experiment_of(grid: Any) -> Any:
    """The finished experiment as plugins describe it (its local directory)."""
    from trackbridge.events import ExperimentInfo

    path = str(grid.experiment_path)
    return ExperimentInfo(name=os.path.basename(path.rstrip("/")), path=path, local_path=path)
