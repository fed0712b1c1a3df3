"""PBT exploits, end to end into every tracker: a real ``PopulationBasedTraining`` run with W&B (offline), MLflow
(SQLite), TensorBoard and Aim at once, read back with each tracker's own reader.

After an exploit a trial continues from the donor's checkpoint, so its ``training_iteration`` may go back; those
results are new (another config), not replays. Every tracker must hold exactly what Tune reported, and show the
exploit point (``trackbridge/exploit`` = 1 at the step the trial continues from).
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from ray import tune
from tensorboard.backend.event_processing import event_accumulator as ea

from tests.aim_reader import read_repo
from tests.step_checkpoints import first_step, step_checkpoint
from tests.wandb_reader import runs_by_id
from trackbridge import TrackBridgeCallback

STEPS = 12
LRS = [0.001, 0.01, 0.1, 1.0]
EXPLOIT = "trackbridge/exploit"


def pbt_trainable(config):
    step = first_step() - 1  # after an exploit: one past the donor checkpoint's step
    while step < STEPS:
        step += 1
        tune.report({"score": config["lr"] * step}, checkpoint=step_checkpoint(step))


class TuneView(tune.Callback):
    """What Tune itself did, per trial: the (training_iteration, score) it reported, in order, the config each
    result ran under, its final config, and its exploits: each start from a checkpoint in another trial's
    directory, with that checkpoint's step (read from the checkpoint's own files)."""

    def __init__(self) -> None:
        self.results: dict[str, list[tuple[int, float]]] = {}
        self.lrs: dict[str, list[float]] = {}
        self.final_lr: dict[str, float] = {}
        self.exploits: dict[str, list[int]] = {}
        self.names: dict[str, str] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.names[trial.trial_id] = str(trial)  # the trial name TrackBridge uses
        checkpoint = trial.checkpoint
        if checkpoint is not None and not str(checkpoint.path).startswith(str(trial.path).rstrip("/") + "/"):
            with open(os.path.join(checkpoint.path, "step")) as f:
                self.exploits.setdefault(trial.trial_id, []).append(int(f.read()))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results.setdefault(trial.trial_id, []).append((result["training_iteration"], result["score"]))
        self.lrs.setdefault(trial.trial_id, []).append(result["config"]["lr"])

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.final_lr[trial.trial_id] = trial.config["lr"]


# ------------------------------------------------------------------------------------------------ readers
def mlflow_view(uri: str, experiment: str) -> dict[str, Any]:
    """Per trial id: the score points (step, value), the exploit marks' steps, the config/lr points."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    out = {}
    for run in client.search_runs([experiment_id]):
        run_id = run.info.run_id

        def points(key: str, run_id: str = run_id) -> list[tuple[int, float]]:
            return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]

        out[run.data.tags["trial_id"]] = {
            "score": points("score"),
            "exploits": sorted(step for step, value in points(EXPLOIT) if value == 1.0),
            "lr": points("config/lr"),
            "status": run.info.status,
        }
    return out


def tensorboard_view(logdir: str, trial_name: str) -> tuple[list[tuple[int, float]], list[int], dict[int, str]]:
    """TensorBoard's own reader (the legacy loader, which keeps every event in file order): the score
    series, the exploit marks' steps, and the exploit texts by step."""
    acc = ea.EventAccumulator(f"{logdir}/{trial_name}", size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    scores = [(e.step, e.value) for e in acc.Scalars("score")]
    tags = acc.Tags()
    marks = [e.step for e in acc.Scalars(EXPLOIT)] if EXPLOIT in tags["scalars"] else []
    config_tag = EXPLOIT + "_config"
    texts = (
        {e.step: e.tensor_proto.string_val[0].decode() for e in acc.Tensors(config_tag)}
        if config_tag in tags["tensors"]
        else {}
    )
    return scores, marks, texts


@pytest.fixture
def wandb_dirs(tmp_path, monkeypatch):
    """Keep W&B's staging, cache and config out of the home directory."""
    for var, sub in (("WANDB_DATA_DIR", "data"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config")):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home" / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")


def test_every_tracker_stores_every_result_pbt_reports_and_shows_the_exploits(ray_session, workdir, wandb_dirs):
    from ray.tune.schedulers import PopulationBasedTraining

    random.seed(3)  # PBT's explore draws from Python's random module on the driver
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    callback = TrackBridgeCallback(
        plugins={
            "wandb": {"mode": "offline", "dir": str(workdir / "wb"), "log_config": True},
            "mlflow": {"tracking_uri": uri},
            "tensorboard": {"logdir": str(workdir / "tb")},
            "aim": {"repo": str(workdir / "aim")},
        }
    )
    tune_view = TuneView()
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=4,
        hyperparam_mutations={"lr": LRS},
        quantile_fraction=0.5,
        resample_probability=1.0,
    )
    tune.Tuner(
        pbt_trainable,
        param_space={"lr": tune.grid_search(LRS)},
        tune_config=tune.TuneConfig(scheduler=pbt, metric="score", mode="max", reuse_actors=True),
        run_config=tune.RunConfig(
            name="pbt_trackers", storage_path=str(workdir / "ray"), callbacks=[callback, tune_view], verbose=0
        ),
    ).fit()

    reported = tune_view.results
    assert len(reported) == 4
    went_back = [tid for tid, r in reported.items() if any(b[0] <= a[0] for a, b in zip(r, r[1:], strict=False))]
    assert went_back, "no exploit sent a trial's steps back; the test would prove nothing"
    assert sum(len(r) for r in reported.values()) > 4 * STEPS
    for row in callback.report["plugins"]:
        assert row["failed"] == 0 and row["dropped"] == 0 and row["skipped_replays"] == 0, row

    mlflow = mlflow_view(uri, "pbt_trackers")
    wandb = runs_by_id(str(workdir / "wb"))
    aim = read_repo(str(workdir / "aim"))
    for tid, results in reported.items():
        exploits = tune_view.exploits.get(tid, [])
        # each exploit shows in Tune's own sequence: a new lr from the step after it on (or the step went back)
        lrs = tune_view.lrs[tid]
        for i in range(1, len(results)):
            if lrs[i] != lrs[i - 1] or results[i][0] <= results[i - 1][0]:
                assert results[i][0] - 1 in exploits, (tid, i, results, exploits)

        # MLflow: every point, a step that came again holding both values (MLflow orders a history by its
        # own keys, not by arrival: compared as a multiset); the marks at the exploit steps
        stored = mlflow[tid]
        assert sorted(stored["score"]) == sorted(results), tid
        assert stored["exploits"] == sorted(exploits), tid
        assert stored["status"] == "FINISHED"
        for i in range(1, len(results)):
            if lrs[i] != lrs[i - 1]:  # the new value from the first step that used it
                assert (results[i][0], lrs[i]) in stored["lr"], (tid, stored["lr"])

        # TensorBoard: the events in the order Tune reported them; a mark and a text at each exploit step
        scores, marks, texts = tensorboard_view(str(workdir / "tb"), tune_view.names[tid])
        assert scores == [(step, pytest.approx(value)) for step, value in results], tid
        assert marks == exploits, tid
        assert sorted(texts) == sorted(set(exploits)), tid
        for step, text in texts.items():
            assert text.startswith(f"continues from step {step}"), text

        # W&B: one row per result in order (training_iteration is the step, _step keeps rising), and a
        # row {training_iteration: step, trackbridge/exploit: 1} at each exploit, before the results after it
        [run] = wandb[tid]
        assert [(r["training_iteration"], r["score"]) for r in run.history if "score" in r] == results, tid
        steps = [r["_step"] for r in run.history]
        assert steps == sorted(set(steps)), "W&B's _step must rise with every row"
        marked = [r["training_iteration"] for r in run.history if r.get(EXPLOIT) == 1]
        assert marked == exploits, tid
        for i, r in enumerate(run.history):
            if r.get(EXPLOIT) == 1 and i + 1 < len(run.history):
                assert run.history[i + 1]["training_iteration"] == r["training_iteration"] + 1
        assert run.config["lr"] == tune_view.final_lr[tid] and run.exit_code == 0

        # Aim: an Aim series holds one value per step, so a branch that goes back continues in the context
        # {"branch": n}; the contexts in branch order hold every result in Tune's order, the marks at the exploits
        aim_run = aim[tid]
        contexts = sorted(aim_run.contexts("score"), key=lambda c: c.get("branch", 0))
        assert [p for c in contexts for p in aim_run.points("score", c)] == [
            (step, pytest.approx(value)) for step, value in results
        ], tid
        aim_marks = {s for c in aim_run.contexts(EXPLOIT) for s, v in aim_run.points(EXPLOIT, c) if v == 1.0}
        assert aim_marks == set(exploits), tid
        assert aim_run.params["status"] == "FINISHED" and aim_run.params["hparams"]["lr"] == tune_view.final_lr[tid]
