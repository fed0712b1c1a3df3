"""``trackbridge.log`` inside trials: values travel to the driver and reach every plugin before the trial's
run is completed, for function and class trainables; outside a trial nothing breaks."""

from __future__ import annotations

import logging

from ray import tune

import trackbridge
from trackbridge import TrackBridgeCallback
from trackbridge.testing import RecordingPlugin

REPORTS = 3
LOGS_PER_REPORT = 4


def logging_trainable(config):
    path = f"/tmp/trackbridge-note-{config['x']}.txt"
    with open(path, "w") as f:
        f.write(f"x={config['x']}")
    for report in range(1, REPORTS + 1):
        for _ in range(LOGS_PER_REPORT):
            trackbridge.log({"batch": {"loss": 1.0 / report}, "note": "text"})
        tune.report({"loss": 1.0 / report})
    trackbridge.log({"final": config["x"]}, step=1000)  # logged after the last report, just before the end
    trackbridge.log_artifact(path, name="note.txt")


class LoggingTrainable(tune.Trainable):
    def setup(self, config):
        self.logger = trackbridge.get_logger(self)

    def step(self):
        self.logger.log({"inner": float(self.iteration)}, step=self.iteration + 1)
        return {"loss": 1.0, "done": self.iteration + 1 >= 3}


def _per_trial_logs(recorder: RecordingPlugin) -> dict[str, list[tuple]]:
    return {tid: [e for e in events if e[0] in ("log", "complete")] for tid, events in recorder.by_trial().items()}


def test_values_logged_in_a_function_trainable_reach_the_plugins_before_the_trial_completes(ray_session, workdir):
    recorder = RecordingPlugin()
    callback = TrackBridgeCallback(plugins=[recorder])
    tune.Tuner(
        logging_trainable,
        param_space={"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(name="inlog", storage_path=str(workdir), callbacks=[callback]),
    ).fit()
    per_trial = _per_trial_logs(recorder)
    assert len(per_trial) == 2
    for events in per_trial.values():
        logs, last = events[:-1], events[-1]
        assert last[0] == "complete" and all(e[0] == "log" for e in logs)
        value_logs = [e for e in logs if e[3]]
        assert [e[2] for e in value_logs] == list(range(1, REPORTS * LOGS_PER_REPORT + 1)) + [1000]
        assert value_logs[0][3] == {"batch/loss": 1.0, "note": "text"}
        assert value_logs[-1][3]["final"] in (1, 2)
        assert [e[4] for e in logs if e[4]] == [["note.txt"]]
    assert callback.report["late_trial_logs"] == 0


def test_a_class_trainable_logs_through_its_logger(ray_session, workdir):
    recorder = RecordingPlugin()
    tune.Tuner(
        LoggingTrainable,
        run_config=tune.RunConfig(
            name="inlog_cls", storage_path=str(workdir), callbacks=[TrackBridgeCallback(plugins=[recorder])]
        ),
    ).fit()
    [events] = _per_trial_logs(recorder).values()
    assert [(e[2], e[3]) for e in events[:-1]] == [(1, {"inner": 0.0}), (2, {"inner": 1.0}), (3, {"inner": 2.0})]
    assert events[-1][0] == "complete"


def test_outside_a_trial_log_warns_once_and_never_raises(caplog):
    with caplog.at_level(logging.WARNING, logger="trackbridge"):
        for _ in range(3):
            trackbridge.log({"x": 1})
        trackbridge.log_artifact(__file__)
    assert sum("nothing is listening" in r.getMessage() for r in caplog.records) == 1


# --------------------------------------------------------------------------- Ray Train (V2) inside a Tune trial
def train_in_tune(config):
    """A Tune trial that runs a 2-worker DataParallelTrainer; workers log through the trial's logger."""
    import ray.train
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    def train_func(cfg):
        import os
        import tempfile

        import ray.train

        rank = ray.train.get_context().get_world_rank()
        for step in range(1, 4):
            cfg["logger"].log({"worker_loss": rank + 1.0 / step})  # rank 0 only (the default)
            cfg["every_rank"].log({"seen": rank}, step=100 + step)  # every rank, the rank in the key
            checkpoint = None
            if step == 2 and rank == 0:
                directory = tempfile.mkdtemp()
                with open(os.path.join(directory, "weights.txt"), "w") as f:
                    f.write(f"step={step}")
                checkpoint = ray.train.Checkpoint.from_directory(directory)
            ray.train.report({"loss": 1.0 / step, "rank": rank}, checkpoint=checkpoint)

    trainer = DataParallelTrainer(
        train_func,
        train_loop_config={
            "logger": trackbridge.get_logger(),
            "every_rank": trackbridge.get_logger(rank_zero_only=False),
        },
        scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=ray.train.RunConfig(
            name=f"train_{config['x']}", storage_path=config["storage"], callbacks=[TuneReportCallback()]
        ),
    )
    trainer.fit()


def test_ray_train_inside_a_tune_trial_rank_zero_logs_and_reported_checkpoints_are_artifacts(
    ray_session, workdir, monkeypatch
):
    monkeypatch.setenv("WANDB_DATA_DIR", str(workdir / "wandb_data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(workdir / "wandb_cache"))
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(workdir / "wandb_artifacts"))
    recorder = RecordingPlugin()
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    callback = TrackBridgeCallback(
        plugins=[
            recorder,
            ("mlflow", {"tracking_uri": uri, "save_artifact": True}),
            ("wandb", {"mode": "offline", "dir": str(workdir), "upload_checkpoints": True}),
        ]
    )
    tune.Tuner(
        tune.with_resources(train_in_tune, {"cpu": 0.5}),
        param_space={"x": 1, "storage": str(workdir / "train")},
        run_config=tune.RunConfig(name="train_in_tune", storage_path=str(workdir / "ray"), callbacks=[callback]),
    ).fit()
    [events] = recorder.by_trial().values()
    logs = [e for e in events if e[0] == "log"]
    rank_zero = [(e[2], e[3]) for e in logs if "worker_loss" in e[3]]
    assert rank_zero == [(1, {"worker_loss": 1.0}), (2, {"worker_loss": 0.5}), (3, {"worker_loss": 1 / 3})]
    every_rank = sorted((e[2], *e[3].items()) for e in logs if "worker_loss" not in e[3])
    assert every_rank == sorted((100 + s, (f"rank_{r}/seen", r)) for s in (1, 2, 3) for r in (0, 1))
    results = [e for e in events if e[0] == "result"]
    assert [e[2] for e in results] == [1, 2, 3] and all(e[3]["rank"] == 0 for e in results)
    assert all("checkpoint_path" not in e[3] for e in results)
    [checkpoint] = [e for e in events if e[0] == "checkpoint"]
    assert checkpoint[2] == 2 and checkpoint[3].startswith(str(workdir / "train"))
    assert events[-1][0] == "complete" and events[-1][2] == "completed"

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("train_in_tune").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3]
    [stored] = client.list_artifacts(run.info.run_id, "checkpoints/2")
    assert stored.path.endswith("weights.txt")
    from tests.wandb_reader import artifact_manifest, read_runs

    [wb] = read_runs(str(workdir))
    [artifact] = wb.artifacts
    assert artifact.type == "model" and "weights.txt" in artifact_manifest(artifact)
