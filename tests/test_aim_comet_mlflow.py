"""Aim, Comet and MLflow from one callback: 4 trials x 50 results, one trial failing at step 20, every point read
back from each tracker with its own reader (``aim.Repo``, Comet's offline archives, ``MlflowClient``)."""

from __future__ import annotations

import pytest
from ray import tune

from tests.aim_reader import read_repo
from tests.comet_reader import by_trial
from trackbridge import TrackBridgeCallback

STEPS = 50
FAILS_AT = 20


def trainable(config):
    for i in range(1, STEPS + 1):
        if config["fail"] and i == FAILS_AT:
            raise RuntimeError(f"fails at step {FAILS_AT} on purpose")
        tune.report({"loss": config["x"] / i, "acc": i / STEPS})


def test_four_trials_into_aim_comet_and_mlflow_every_point_in_each(ray_session, workdir):
    from mlflow import MlflowClient

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    callback = TrackBridgeCallback(
        plugins={
            "aim": {"repo": str(workdir / "aim")},
            "comet": {"offline_directory": str(workdir / "comet")},
            "mlflow": {"tracking_uri": uri},
        }
    )
    grid = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1, 2, 3, 4]), "fail": tune.sample_from(lambda spec: spec.config.x == 4)},
        run_config=tune.RunConfig(name="together", storage_path=str(workdir / "ray"), callbacks=[callback], verbose=0),
    ).fit()
    for row in callback.report["plugins"]:
        assert row["failed"] == 0 and row["dropped"] == 0, row
    expected = {}
    for result in grid:
        x = result.config["x"]
        last = FAILS_AT - 1 if x == 4 else STEPS
        expected[result.metrics["trial_id"]] = (x, last)
    assert len(expected) == 4

    aim = read_repo(str(workdir / "aim"))
    comet = by_trial(workdir / "comet")
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name("together").experiment_id
    mlflow = {r.data.tags["trial_id"]: r for r in client.search_runs([experiment_id])}
    assert set(aim) == set(comet) == set(mlflow) == set(expected)

    for trial_id, (x, last) in expected.items():
        points = [(i, pytest.approx(x / i)) for i in range(1, last + 1)]
        status = "FAILED" if x == 4 else "FINISHED"
        assert aim[trial_id].points("loss") == points
        assert aim[trial_id].params["status"] == status
        assert sorted(comet[trial_id].series("loss")) == points
        assert comet[trial_id].other("status") == status
        history = client.get_metric_history(mlflow[trial_id].info.run_id, "loss")
        assert sorted((m.step, m.value) for m in history) == points
        assert mlflow[trial_id].info.status == status
