"""Plain Ray Train V2 runs (no Tune) tracked by ``TrackBridgeTrainCallback``: real 2-worker
``DataParallelTrainer`` runs, what each tracker stored read back with its own reader (``MlflowClient`` on
SQLite, the W&B offline-run reader, TensorBoard's ``EventAccumulator``)."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import ray.train
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

from tests.wandb_reader import artifact_manifest, runs_by_id
from trackbridge import TrackBridgeTrainCallback, hookimpl
from trackbridge.testing import RecordingPlugin
from trackbridge.train_translate import end_status, report_metrics, report_step, storage_location

STEPS = 4
CHECKPOINT_AT = (2, 4)
CONFIG = {"lr": 0.1, "model": {"width": 8}, "api_key": "not-for-trackers"}


@pytest.fixture(autouse=True)
def fast_controller(monkeypatch):
    """Train's controller polls its workers every 2 s and takes one report per poll; Train passes this
    variable on to the controller, so the runs here take seconds less. Train also starts a preemption watcher
    actor (a process of its own) with every worker group: no node here is ever preempted."""
    monkeypatch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    monkeypatch.setenv("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")


def train_func(config: dict[str, Any]) -> None:
    """Each rank reports its own loss (rank n adds 100 * n); rank 0 saves the checkpoints; rank ``fail_rank``
    (default 1) raises at step ``fail_at``."""
    rank = ray.train.get_context().get_world_rank()
    for step in range(1, STEPS + 1):
        if config.get("fail_at") == step and rank == config.get("fail_rank", 1):
            raise RuntimeError("worker diverged on purpose")
        checkpoint = None
        if step in CHECKPOINT_AT and rank == 0:
            directory = tempfile.mkdtemp()
            with open(os.path.join(directory, "state.json"), "w") as f:
                json.dump({"step": step}, f)
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        metrics: dict[str, Any] = {"loss": config["lr"] * 10 / step + 100 * rank, "eval": {"acc": step / STEPS}}
        if config.get("report_iteration"):
            metrics["training_iteration"] = step
        ray.train.report(metrics, checkpoint=checkpoint)
        time.sleep(config.get("sleep", 0))


class Rejects:
    name = "rejects"

    @hookimpl
    def trackbridge_trial_result(self, step):
        raise ValueError(f"rejected step {step}")


class Quiet:
    name = "quiet"

    @hookimpl
    def trackbridge_trial_result(self, step):
        pass


class TouchOnResult:
    """Touches a file when the controller has passed a result to the plugins."""

    name = "touch"

    def __init__(self, path: str) -> None:
        self.path = path

    @hookimpl
    def trackbridge_trial_result(self, step):
        Path(self.path).touch()


def _fit(
    workdir: Path,
    name: str,
    callback: TrackBridgeTrainCallback,
    config: dict[str, Any],
    num_workers: int = 2,
    **run: Any,
):
    """A Train run; 2 workers where ranks are the point (rank 0's metrics only, or every rank's), else 1."""
    trainer = DataParallelTrainer(
        train_func,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=num_workers),
        run_config=ray.train.RunConfig(name=name, storage_path=str(workdir / "ray"), callbacks=[callback], **run),
    )
    return trainer.fit()


def _mlflow(workdir: Path) -> dict[str, Any]:
    return {
        "tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}",
        "artifact_location": str(workdir / "mlartifacts"),  # not the controller's working directory
    }


def _mlflow_run(workdir: Path, experiment: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return client, run


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _report(workdir: Path, name: str) -> dict[str, Any]:
    """The delivery report the controller wrote into the run's storage directory."""
    report = json.loads((workdir / "ray" / name / "trackbridge_report.json").read_text())
    for row in report["plugins"]:
        assert row["failed"] == 0 and row["dropped"] == 0 and row["drained"], row
    return report


def test_a_run_that_succeeds_is_one_run_per_tracker_with_rank_zero_metrics_config_and_checkpoints(ray_session, workdir):
    wandb_dir = workdir / "wb"
    callback = TrackBridgeTrainCallback(
        plugins={
            "mlflow": {**_mlflow(workdir), "save_artifact": True},
            "wandb": {"mode": "offline", "dir": str(wandb_dir), "project": "train", "upload_checkpoints": True},
            "tensorboard": {},  # into the run's own storage directory
        }
    )
    started = time.perf_counter()
    result = _fit(workdir, "train_ok", callback, CONFIG)
    print(f"\nsucceeding Train run with three trackers: fit() took {time.perf_counter() - started:.1f}s")
    assert result.error is None
    report = _report(workdir, "train_ok")
    assert report["experiment"] == "train_ok" and len(report["plugins"]) == 3
    expected_loss = [(step, pytest.approx(1.0 / step)) for step in range(1, STEPS + 1)]  # rank 0's only
    flat_config = {"lr": 0.1, "model/width": 8, "api_key": "***REDACTED***"}

    client, run = _mlflow_run(workdir, "train_ok")
    trial_id = run.data.tags["trial_id"]
    assert run.info.run_name == f"train_ok_{trial_id[:8]}" and run.info.status == "FINISHED"
    assert run.data.params == {k: str(v) for k, v in flat_config.items()}
    assert _history(client, run.info.run_id, "loss") == expected_loss
    assert [s for s, _ in _history(client, run.info.run_id, "eval/acc")] == list(range(1, STEPS + 1))
    assert not any(key.startswith("rank_") for key in run.data.metrics)
    for step in CHECKPOINT_AT:
        [stored] = client.list_artifacts(run.info.run_id, f"checkpoints/{step}")
        local = client.download_artifacts(run.info.run_id, stored.path, str(workdir / f"dl{step}"))
        assert json.loads(Path(local).read_text()) == {"step": step}

    [[wb]] = runs_by_id(str(wandb_dir)).values()
    assert wb.run_id == trial_id and wb.name == run.info.run_name and wb.group == "train_ok"
    assert wb.config == flat_config
    assert wb.exit_code == 0 and wb.summary["tune/status"] == "completed"
    assert [(row["training_iteration"], row["loss"]) for row in wb.history] == expected_loss
    assert [set(a.aliases) for a in wb.artifacts] == [{"latest", f"step_{s}"} for s in CHECKPOINT_AT]
    assert all("state.json" in artifact_manifest(a) for a in wb.artifacts)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(workdir / "ray" / "train_ok"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == expected_loss


def test_a_run_whose_worker_raises_is_failed_with_the_error_after_its_retry(ray_session, workdir):
    callback = TrackBridgeTrainCallback(
        plugins={"mlflow": _mlflow(workdir), "wandb": {"mode": "offline", "dir": str(workdir), "project": "train"}}
    )
    # One worker (rank 0) is enough: the run's tracker runs get rank 0's metrics, and its failure and retry are
    # those of the worker group, whatever its size.
    config = {**CONFIG, "fail_at": 2, "fail_rank": 0, "report_iteration": True}
    with pytest.raises(ray.train.TrainingFailedError, match="diverged on purpose"):
        _fit(
            workdir,
            "train_fails",
            callback,
            config,
            num_workers=1,
            failure_config=ray.train.FailureConfig(max_failures=1),
        )
    # The retry's worker group reports training_iteration 1 again: a replay, dropped, never a second row. Whether
    # the failed group's own report of iteration 1 reached Train's controller before the worker failed is a race in
    # Ray Train (CI saw both): 1 replay dropped when it did, none when the retry's report was the first.
    assert _report(workdir, "train_fails")["skipped_replayed_results"] in (0, 1)

    client, run = _mlflow_run(workdir, "train_fails")
    assert run.info.status == "FAILED" and run.data.tags["trackbridge.status"] == "failed"
    assert "RuntimeError: worker diverged on purpose" in run.data.tags["error"]
    assert _history(client, run.info.run_id, "loss") == [(1, pytest.approx(1.0))]
    assert "training_iteration" not in run.data.metrics
    [[wb]] = runs_by_id(str(workdir)).values()
    assert wb.exit_code == 1 and wb.summary["tune/status"] == "failed"
    assert "worker diverged on purpose" in wb.summary["tune/error"]


def test_rank_zero_only_false_adds_every_rank_with_the_rank_in_the_key(ray_session, workdir):
    callback = TrackBridgeTrainCallback(plugins={"mlflow": _mlflow(workdir)}, rank_zero_only=False)
    _fit(workdir, "train_ranks", callback, CONFIG)
    client, run = _mlflow_run(workdir, "train_ranks")
    assert set(run.data.metrics) == {"rank_0/loss", "rank_1/loss", "rank_0/eval/acc", "rank_1/eval/acc"}
    for rank in (0, 1):
        expected = [(step, pytest.approx(1.0 / step + 100 * rank)) for step in range(1, STEPS + 1)]
        assert _history(client, run.info.run_id, f"rank_{rank}/loss") == expected
    assert run.info.status == "FINISHED"


def test_fail_fast_fails_the_train_run_with_the_plugin_failure(ray_session, workdir):
    callback = TrackBridgeTrainCallback(plugins=[Rejects()], fail_fast=True, max_retries=0)
    with pytest.raises(ray.train.ControllerError, match="plugin 'rejects' failed in trackbridge_trial_result"):
        _fit(workdir, "train_fail_fast", callback, {**CONFIG, "sleep": 0.5}, num_workers=1)


def test_ctrl_c_aborts_the_run_and_its_tracker_runs_end_unfinished(ray_session, workdir):
    """Ctrl+C on the driver: Train's SIGINT handler aborts the controller, whose abort hook ends the runs."""
    marker = workdir / "reported"
    callback = TrackBridgeTrainCallback(plugins=[("mlflow", _mlflow(workdir)), TouchOnResult(str(marker))])
    original = signal.getsignal(signal.SIGINT)

    def interrupt() -> None:
        while not marker.exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        with pytest.raises((SystemExit, ray.exceptions.RayActorError)):  # Train's handler exits the driver
            _fit(workdir, "train_abort", callback, {**CONFIG, "sleep": 30}, num_workers=1)
    finally:
        signal.signal(signal.SIGINT, original)  # Train leaves its handler installed
    _report(workdir, "train_abort")
    client, run = _mlflow_run(workdir, "train_abort")
    assert run.info.status == "KILLED" and run.data.tags["trackbridge.status"] == "unfinished"
    assert [s for s, _ in _history(client, run.info.run_id, "loss")] == [1]


# --------------------------------------------------------------------------- without Ray Train running


def test_it_is_a_controller_callback_and_not_a_user_callback():
    """A ``UserCallback`` would get only after_report/after_exception (no start, no end)."""
    from ray.train import UserCallback
    from ray.train.v2._internal.execution.callback import ControllerCallback, ReportCallback

    callback = TrackBridgeTrainCallback(plugins=[Quiet()])
    assert isinstance(callback, ControllerCallback) and isinstance(callback, ReportCallback)
    assert not isinstance(callback, UserCallback)
    ray.train.RunConfig(callbacks=[callback])  # accepted by Train V2's RunConfig


def test_translation_of_reports_steps_storage_and_errors(tmp_path):
    per_rank = [{"loss": 1.0, "training_iteration": 7, "eval": {"acc": 0.5}}, {"loss": 2.0, "training_iteration": 7}]
    assert report_step(per_rank) == 7 and report_step([{"training_iteration": True}]) is None
    assert report_metrics(per_rank, rank_zero_only=True, excludes=()) == {"loss": 1.0, "eval/acc": 0.5}
    assert report_metrics(per_rank, rank_zero_only=False, excludes=["eval"]) == {
        "rank_0/loss": 1.0,
        "rank_1/loss": 2.0,
    }
    assert report_metrics(per_rank, rank_zero_only=False, excludes=["rank_1/*"]) == {
        "rank_0/loss": 1.0,
        "rank_0/eval/acc": 0.5,
    }
    local = ray.train.RunConfig(name="r", storage_path=str(tmp_path))
    assert storage_location(local) == (str(tmp_path / "r"), None)

    class Failed:
        error = RuntimeError("\x1b[31mboom\x1b[0m")

    class Succeeded:
        error = None

    assert end_status(Failed()) == ("failed", "boom")
    assert end_status(Succeeded()) == ("completed", None)


def test_secret_options_are_named_as_staying_on_the_driver(caplog):
    with caplog.at_level("WARNING", logger="trackbridge"):
        TrackBridgeTrainCallback(plugins={"mlflow": {"tracking_token": "tok-9f8e7d", "tracking_uri": "sqlite:///x.db"}})
    assert any("'mlflow' was given secret options" in r.getMessage() for r in caplog.records)
    assert "tok-9f8e7d" not in caplog.text


def _context(tmp_path: Path, name: str = "direct") -> SimpleNamespace:
    """What ``after_controller_start`` reads of Train's ``TrainRunContext``."""
    return SimpleNamespace(
        run_id="0123456789abcdef",
        run_config=ray.train.RunConfig(name=name, storage_path=str(tmp_path)),
        train_loop_config={"lr": 0.5, "db": {"password": "hunter2"}},
    )


def test_the_hooks_driven_directly_give_the_promised_lifecycle_and_report(tmp_path):
    recorder = RecordingPlugin()
    callback = TrackBridgeTrainCallback(plugins=[recorder])
    callback.after_controller_start(_context(tmp_path))
    callback.after_report(SimpleNamespace(checkpoint=None), [{"loss": 2.0}, {"loss": 3.0}])
    checkpoint = SimpleNamespace(path=str(tmp_path / "ckpt"), filesystem=None)
    callback.after_report(SimpleNamespace(checkpoint=checkpoint), [{"loss": 1.0}, {"loss": 1.5}])
    callback.after_controller_finish(SimpleNamespace(error=None))
    callback.before_controller_abort()  # after the end: nothing more
    callback.after_report(SimpleNamespace(checkpoint=None), [{"loss": 0.0}])
    tid = "0123456789abcdef"
    assert [e for e in recorder.events if e[0] != "flush"] == [
        ("setup",),
        ("experiment_start", "direct"),
        ("trial_start", tid, False, None, {"lr": 0.5, "db/password": "***REDACTED***"}),
        ("result", tid, 1, {"loss": 2.0}),
        ("result", tid, 2, {"loss": 1.0}),
        ("checkpoint", tid, 2, str(tmp_path / "ckpt")),
        ("complete", tid, "completed", None),
        ("experiment_end", "direct"),
    ]
    assert callback.report["path"] == str(tmp_path / "direct" / "trackbridge_report.json")


def test_an_abort_ends_the_run_unfinished_once(tmp_path):
    recorder = RecordingPlugin()
    callback = TrackBridgeTrainCallback(plugins=[recorder])
    callback.after_controller_start(_context(tmp_path))
    callback.before_controller_abort()
    callback.after_controller_finish(SimpleNamespace(error=RuntimeError("late")))
    assert [e for e in recorder.events if e[0] == "complete"] == [("complete", "0123456789abcdef", "unfinished", None)]


def test_a_failing_start_never_fails_training_unless_fail_fast(tmp_path, monkeypatch, caplog):
    def broken(context):
        raise ValueError("no storage")

    monkeypatch.setattr("trackbridge.train_callback.experiment_info", broken)
    callback = TrackBridgeTrainCallback(plugins=[RecordingPlugin()])
    with caplog.at_level("ERROR", logger="trackbridge"):
        callback.after_controller_start(_context(tmp_path))
        callback.after_report(SimpleNamespace(checkpoint=None), [{"loss": 1.0}])
        callback.after_controller_finish(SimpleNamespace(error=None))
    assert "after_controller_start failed in Ray Train's controller" in caplog.text
    strict = TrackBridgeTrainCallback(plugins=[RecordingPlugin()], fail_fast=True)
    with pytest.raises(ValueError, match="no storage"):
        strict.after_controller_start(_context(tmp_path))
    strict.before_controller_abort()


def test_a_controller_that_exits_without_an_end_hook_is_drained_at_exit(tmp_path):
    """The bridge registers its exit drain in the process where the run started (Train's controller)."""
    from trackbridge import exit_drain

    recorder = RecordingPlugin()
    callback = TrackBridgeTrainCallback(plugins=[recorder])
    callback.after_controller_start(_context(tmp_path))
    callback.after_report(SimpleNamespace(checkpoint=None), [{"loss": 1.0}, {"loss": 2.0}])
    exit_drain.close_all()  # what the interpreter's exit runs
    assert [e for e in recorder.events if e[0] != "flush"][-2:] == [
        ("complete", "0123456789abcdef", "unfinished", None),
        ("experiment_end", "direct"),
    ]
    assert (tmp_path / "direct" / "trackbridge_report.json").exists()
