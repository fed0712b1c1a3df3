"""One small real Ray Tune run through a plugin, for the conformance kit (``tune_run_check``).

Two trials of a function trainable, run at once: each reports ``loss`` at steps 1..3 and logs ``batch_loss``
from inside the trial (``trackbridge.log``) at its own steps 1..6; one completes, the other raises after its
third result. What the plugin's tracker stored is then read back with the author's reader. Needs Ray
(``ray.init`` is called with 2 CPUs unless Ray is already running).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trackbridge.testing.scenarios import PluginFactory
from trackbridge.testing.stored import Reader, check_logged, check_stored

RESULTS = 3
EXPERIMENT = "trackbridge_kit_tune_run"


def kit_trainable(config: dict[str, Any]) -> None:
    """Reports ``loss`` at steps 1..3 and logs ``batch_loss`` at 1..6; raises after step 3 if asked to."""
    from ray import tune

    import trackbridge

    for step in range(1, RESULTS + 1):
        for logged in (2 * step - 1, 2 * step):
            trackbridge.log({"batch_loss": 1.0 / logged})
        tune.report({"loss": config["lr"] / step})
    if config["fail"]:
        raise RuntimeError("failing on purpose after the last result (conformance kit)")


def tune_run_check(make_plugin: PluginFactory, read_back: Reader | None, directory: Path) -> list[str]:
    """Run the experiment with ``TrackBridgeCallback(plugins=[make_plugin(directory)])``; the problems found."""
    import ray
    from ray import tune

    from trackbridge import TrackBridgeCallback

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    directory.mkdir(parents=True, exist_ok=True)
    callback = TrackBridgeCallback(plugins=[make_plugin(directory)])
    tuner = tune.Tuner(
        kit_trainable,
        param_space={"lr": 0.5, "fail": tune.grid_search([False, True])},
        tune_config=tune.TuneConfig(max_concurrent_trials=2),
        run_config=tune.RunConfig(
            name=EXPERIMENT, storage_path=str(directory / "ray"), callbacks=[callback], verbose=0
        ),
    )
    grid = tuner.fit()
    problems: list[str] = []
    report = callback.report or {}
    for row in report.get("plugins", []):
        if row.get("failed") or row.get("dropped") or not row.get("drained", True):
            problems.append(
                f"the delivery report counts {row.get('failed')} failed and {row.get('dropped')} dropped events "
                f"(by hook: {row.get('errors_by_hook')}; {row.get('disabled_reason') or 'not disabled'})"
            )
    expected: dict[str, tuple[list[int], str]] = {}
    for result in (grid[i] for i in range(len(grid))):
        trial_id = result.metrics.get("trial_id") if result.metrics else None
        if trial_id is None:
            problems.append(f"Tune reported no result for a trial ({result.error!r}); the kit cannot check it")
            continue
        expected[trial_id] = (
            list(range(1, RESULTS + 1)),
            "failed" if (result.config or {}).get("fail") else "completed",
        )
    if len(expected) != 2:
        problems.append(f"Tune ran {len(expected)} trials with results, expected 2")
    if read_back is not None:
        stored = read_back(directory)
        check_stored(stored, expected, problems)
        check_logged(stored, {tid: list(range(1, 2 * RESULTS + 1)) for tid in expected}, problems)
    return [f"in a real Tune run: {p}" for p in problems]
