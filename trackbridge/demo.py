"""``trackbridge demo``: a small, real Tune experiment tracked by every installed plugin, offline.

A search space, an ASHA scheduler that stops poor trials early, checkpoints, and one trial that fails on
purpose, with Tune's progress table while it runs. Then, for each tracker, a line of what it stored, read
back from the tracker itself (``TrackerPlugin.stored_summary``), beside what Tune reported, and the
commands to look at the results (``view_command``).

Runs on embedded defaults: no account, no server, no network. Each plugin says how it runs that way
(``TrackerPlugin.offline_options``: W&B offline runs, an MLflow SQLite store, TensorBoard event files, ...,
all under one directory) and which option stores checkpoints (``checkpoint_option``); the demo knows no
tracker.
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from trackbridge.discovery import load_target, usable_plugin_names
from trackbridge.stored_summary import StoredSummary, count_leaves

#: The metrics each result of the demo's trainable holds (``eval`` is nested: ``eval/loss``, ...).
METRICS_PER_RESULT = 4
#: The on-purpose failure's message, also shown in each tracker's failed run.
FAILURE = "trackbridge demo: this trial fails on purpose, to show a failed run in every tracker"


def checkpoint_every(steps: int) -> int:
    """The demo's trials save a checkpoint every this many steps (about twice per trial)."""
    return max(1, steps // 2)


def demo_trainable(config: dict[str, Any]) -> None:
    """A toy 'training': a noisy loss that decays at a rate set by the learning rate and momentum."""
    from ray import tune

    rng = random.Random(config["seed"])
    loss = 1.0
    for step in range(1, config["steps"] + 1):
        if step == config["fail_at_step"]:
            raise RuntimeError(FAILURE)
        loss = loss * (1 - config["lr"] * (1 + config["momentum"])) + rng.uniform(0, 0.02)
        metrics = {"loss": loss, "accuracy": 1 - loss / 2, "eval": {"loss": loss * 1.1, "perplexity": math.exp(loss)}}
        checkpoint = None
        if step % checkpoint_every(config["steps"]) == 0:
            d = tempfile.mkdtemp(prefix="trackbridge-demo-ckpt-")
            with open(os.path.join(d, "model.txt"), "w") as f:
                f.write(f"step={step} loss={loss}\n")
            checkpoint = tune.Checkpoint.from_directory(d)
        tune.report(metrics, checkpoint=checkpoint)


def _demo_options(name: str, directory: str) -> dict[str, Any]:
    """The plugin's offline options, with checkpoints stored as artifacts where the tracker can."""
    target = load_target(name)
    hint = getattr(target, "offline_options", None)
    options = dict(hint(directory)) if callable(hint) else {}
    checkpoint_option = getattr(target, "checkpoint_option", None)
    if checkpoint_option:
        options.setdefault(checkpoint_option, True)
    return options


def param_space(trials: int, results: int) -> dict[str, Any]:
    """``trials`` trials (the last one fails on purpose at ``fail_step``), random learning rate and momentum."""
    from ray import tune

    fail_step = fail_step_of(results)
    return {
        "lr": tune.loguniform(0.005, 0.2),
        "momentum": tune.uniform(0.0, 0.9),
        "fail_at_step": tune.grid_search([0] * (trials - 1) + [fail_step]) if trials > 1 else 0,
        "seed": 7,
        "steps": results,
        "optimizer": {"name": "sgd"},
    }


def fail_step_of(results: int) -> int:
    """The step at which the failing trial raises (before reporting it)."""
    return max(1, min(3, results // 2))


def run_demo(plugins: Sequence[str] | None, trials: int, results: int, directory: str) -> int:
    root = os.path.abspath(directory)
    os.makedirs(root, exist_ok=True)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's classic progress table (CLIReporter)

    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from trackbridge.callback import TrackBridgeCallback

    names = list(plugins) if plugins else usable_plugin_names()
    if not names:
        print('No tracker SDK is installed; install one: pip install "trackbridge[all]"')
        return 1
    trials, results = max(1, trials), max(1, results)
    print(
        f"trackbridge demo: {trials} trials x up to {results} results into {', '.join(names)} under {root}\n"
        f"  ASHA stops poor trials early; checkpoints every {checkpoint_every(results)} steps"
        + (f"; the last trial fails on purpose at step {fail_step_of(results)}" if trials > 1 else "")
    )
    callback = TrackBridgeCallback(plugins={name: _demo_options(name, root) for name in names})
    # e.g. the TensorBoard plugin's: keeps Tune's own TensorBoard logger from writing every scalar twice
    callbacks: list[Any] = [callback, *callback.companion_callbacks()]
    if not ray.is_initialized():
        ray.init(num_cpus=min(2, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    started = time.monotonic()
    tuner = tune.Tuner(
        demo_trainable,
        param_space=param_space(trials, results),
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            scheduler=ASHAScheduler(max_t=results, grace_period=max(fail_step_of(results), results // 4)),
        ),
        run_config=tune.RunConfig(
            name="demo",
            storage_path=os.path.join(root, "ray_results"),
            callbacks=callbacks,
            verbose=1,
            progress_reporter=tune.CLIReporter(
                metric_columns=["loss", "accuracy", "training_iteration"], max_report_frequency=10
            ),
        ),
    )
    grid = tuner.fit()
    elapsed = time.monotonic() - started
    print(f"\nTuner.fit() took {elapsed:.1f}s")
    try:
        best = grid.get_best_result()
        print(f"best trial: lr={(best.config or {})['lr']:.4f} loss={(best.metrics or {})['loss']:.4f}")
    except RuntimeError:  # every trial failed
        pass
    experiment = _experiment_of(grid)
    reported = reported_by_tune(grid, results)
    stored = {name: _stored(callback, name, experiment) for name in names}
    print_table(reported, stored)
    table_path = os.path.join(root, "stored.json")
    with open(table_path, "w") as f:
        json.dump(
            {"tune": reported.as_dict(), "trackers": {n: s.as_dict() if s else None for n, s in stored.items()}},
            f,
            indent=1,
        )
    print("\nLook at the results:")
    for name in names:
        view = getattr(callback.get_plugin(name), "view_command", None)
        command = view(experiment) if callable(view) else None
        if command:
            print(f"  {name + ':':<20} {command}")
    report: dict[str, Any] = callback.report or {}
    if report.get("path"):
        print(f"  {'delivery report:':<20} {report['path']}")
    print(f"  {'this table (JSON):':<20} {table_path}")
    delivered = all(not r["failed"] and not r["dropped"] for r in report.get("plugins", []))
    unexpected = [r for r in (grid[i] for i in range(len(grid))) if r.error is not None and FAILURE not in str(r.error)]
    differing = [name for name, summary in stored.items() if summary is not None and not holds(summary, reported)]
    if differing:
        print(f"\nNOT what Tune reported (runs, metric points or statuses differ): {', '.join(differing)}")
    return 0 if delivered and not unexpected and not differing else 1


def holds(stored: StoredSummary, reported: StoredSummary) -> bool:
    """The tracker holds one run per trial, every metric point Tune reported, and every trial's end."""
    return (stored.runs, stored.metric_points, dict(stored.statuses)) == (
        reported.runs,
        reported.metric_points,
        dict(reported.statuses),
    )


def reported_by_tune(grid: Any, results: int) -> StoredSummary:
    """What Tune reported, counted like the trackers' lines: one run per trial, every metric of every result,
    every config entry, every checkpoint, every trial's end."""
    reported = StoredSummary(artifacts=0)
    for result in (grid[i] for i in range(len(grid))):
        steps = int((result.metrics or {}).get("training_iteration") or 0)
        reported.runs += 1
        reported.metric_points += steps * METRICS_PER_RESULT
        reported.params += count_leaves(result.config or {})
        reported.artifacts = (reported.artifacts or 0) + steps // checkpoint_every(results)
        reported.statuses["failed" if result.error is not None else "completed"] += 1
    return reported


def _stored(callback: Any, name: str, experiment: Any) -> StoredSummary | None:
    summary = getattr(callback.get_plugin(name), "stored_summary", None)
    if not callable(summary):
        return None
    try:
        found: StoredSummary | None = summary(experiment)
        return found
    except Exception as exc:  # a reader that fails must not hide the other trackers' lines
        print(f"  ({name}: reading back failed: {type(exc).__name__}: {exc})")
        return None


def print_table(reported: StoredSummary, stored: dict[str, StoredSummary | None]) -> None:
    """Tune's line, then each tracker's, read back from the tracker."""
    print("\nWhat Tune reported, and what each tracker stored (read back from the tracker itself):")
    header = f"  {'':<16}{'runs':>6}{'metric points':>15}{'params':>8}{'artifacts':>11}   statuses"
    print(header)

    def line(label: str, s: StoredSummary) -> str:
        artifacts = "-" if s.artifacts is None else str(s.artifacts)
        return f"  {label:<16}{s.runs:>6}{s.metric_points:>15}{s.params:>8}{artifacts:>11}   {s.status_text()}"

    print(line("Tune reported", reported) + "   (artifacts: checkpoints)")
    for name, summary in stored.items():
        print(line(name, summary) if summary else f"  {name:<16}{'(this plugin cannot read its tracker back)':>40}")
    print(
        "  metric points: values of the trials' metrics, one per metric and step; params: config entries;\n"
        "  artifacts as each tracker counts them (MLflow and Aim: files, W&B: artifact versions, Comet: model\n"
        "  files); TensorBoard keeps no artifacts."
    )


def _experiment_of(grid: Any) -> Any:
    """The finished experiment as plugins describe it (its local directory)."""
    from trackbridge.events import ExperimentInfo

    path = str(grid.experiment_path)
    return ExperimentInfo(name=os.path.basename(path.rstrip("/")), path=path, local_path=path)
