"""Every script in ``examples/`` runs (at small sizes, in the shared Ray session; the interrupted one as a user
runs it, in a process of its own), and what it promises is in the trackers, read back with their own readers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from wandb_reader import read_runs

from examples import class_trainable, failing_trial, function_trainable, pbt, ray_train, wandb_online_or_offline

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _mlflow_runs(workdir: Path, experiment: str) -> tuple[object, list]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    return client, client.search_runs([found.experiment_id])


def _steps(client, run, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, key))


def _artifact_files(client, run_id: str, path: str | None = None) -> list[str]:
    out: list[str] = []
    for item in client.list_artifacts(run_id, path):
        out += _artifact_files(client, run_id, item.path) if item.is_dir else [item.path]
    return out


def _tensorboard_steps(experiment_dir: Path, tag: str) -> list[list[int]]:
    found = []
    for trial_dir in sorted(p for p in experiment_dir.iterdir() if p.is_dir()):
        acc = EventAccumulator(str(trial_dir), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            found.append([e.step for e in acc.Scalars(tag)])
    return found


def test_function_trainable_logs_results_in_trial_values_and_a_file_into_every_tracker(ray_session, workdir):
    # W&B is read back in the W&B example (here W&B would write where its first setup in this process was)
    grid = function_trainable.main(str(workdir / "ray"), ("mlflow", "tensorboard"), trials=2, epochs=3)
    assert not grid.errors
    client, runs = _mlflow_runs(workdir, "function-trainable")
    assert len(runs) == 2
    for run in runs:
        assert _steps(client, run, "loss") == [1, 2, 3]
        assert _steps(client, run, "batch_loss") == list(range(1, 31))  # the in-trial axis: 3 epochs x 10
        assert any(path.endswith("summary.json") for path in _artifact_files(client, run.info.run_id))
    assert _tensorboard_steps(workdir / "ray" / "function-trainable", "loss") == [[1, 2, 3]] * 2


def test_class_trainable_stores_its_steps_in_trial_values_and_checkpoints(ray_session, workdir):
    grid = class_trainable.main(str(workdir / "ray"), ("mlflow", "tensorboard"), trials=2, steps=6)
    assert not grid.errors
    client, runs = _mlflow_runs(workdir, "class-trainable")
    assert len(runs) == 2
    for run in runs:
        assert _steps(client, run, "loss") == list(range(1, 7))
        assert _steps(client, run, "gradient") == list(range(1, 7))
        files = _artifact_files(client, run.info.run_id)
        # checkpoint_frequency=5 and checkpoint_at_end: checkpoints of steps 5 and 6
        assert {p.split("/")[1] for p in files if p.startswith("checkpoints/")} == {"5", "6"}, files


def test_pbt_keeps_one_run_per_trial_through_exploits(ray_session, workdir):
    # two trials at once on two CPUs: PBT compares them at steps 4 and 8 (its quantiles round up to one trial)
    grid = pbt.main(str(workdir / "ray"), ("mlflow", "tensorboard"), trials=2, steps=8)
    assert not grid.errors
    client, runs = _mlflow_runs(workdir, "pbt")
    assert len(runs) == 2  # one run per trial, however often PBT exploited
    for run in runs:
        steps = _steps(client, run, "score")
        assert set(steps) == set(range(1, 9)), steps  # every step present (a branch may store some again)
        assert run.info.status == "FINISHED"
    # the worse trial took the better one's checkpoint at step 4 (marked in its run)
    assert sum(len(_steps(client, run, "trackbridge/exploit")) for run in runs) >= 1


def test_failing_trial_is_one_failed_run_with_the_error_and_no_repeated_step(ray_session, workdir):
    grid = failing_trial.main(str(workdir / "ray"), ("mlflow", "tensorboard"))
    assert len(grid.errors) == 1
    client, runs = _mlflow_runs(workdir, "failing-trial")
    by_status = {r.info.status: r for r in runs}
    assert sorted(by_status) == ["FAILED", "FINISHED"] and len(runs) == 2
    failed = by_status["FAILED"]
    assert "ran out of data" in failed.data.tags["error"]
    assert _steps(client, failed, "loss") == [1, 2]  # retried from step 1, still each step once
    assert _steps(client, by_status["FINISHED"], "loss") == [1, 2, 3, 4, 5]


def test_wandb_example_writes_offline_runs_when_the_environment_says_offline(ray_session, workdir, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    wandb_online_or_offline.main(str(workdir / "ray"))
    runs = read_runs(str(workdir / "wandb"))
    assert len(runs) == 2 and {r.project for r in runs} == {"trackbridge-examples"}
    assert all([row["loss"] for row in r.history if "loss" in row] and r.exit_code == 0 for r in runs)


def test_ray_train_example_is_one_run_with_rank_zero_metrics_and_checkpoints(ray_session, workdir):
    result = ray_train.main(str(workdir / "ray"), ("mlflow",), workers=2, epochs=4)
    assert result.error is None
    client, runs = _mlflow_runs(workdir, "ray-train")
    [run] = runs
    assert _steps(client, run, "loss") == [1, 2, 3, 4] and run.data.params["lr"] == "0.1"
    files = _artifact_files(client, run.info.run_id)
    assert {p.split("/")[1] for p in files if p.startswith("checkpoints/")} == {"2", "4"}, files


def _checkpoints(experiment_dir: Path) -> list[int]:
    trial_dirs = [p for p in experiment_dir.glob("train_*") if p.is_dir()] if experiment_dir.exists() else []
    return [len(list(d.glob("checkpoint_*"))) for d in trial_dirs]


def test_resume_after_interruption_continues_each_run_without_a_step_twice(tmp_path):
    script = [sys.executable, str(EXAMPLES / "resume_after_interruption.py"), "--storage-path", str(tmp_path / "ray")]
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    first = subprocess.Popen(
        [*script, "--steps", "12", "--seconds-per-step", "0.3"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and first.poll() is None:
        done = _checkpoints(tmp_path / "ray" / "resume-after-interruption")
        if len(done) == 2 and min(done) >= 3:
            break
        time.sleep(0.2)
    assert first.poll() is None, first.communicate()[0][-3000:]
    first.send_signal(signal.SIGINT)  # Ctrl+C
    out, _ = first.communicate(timeout=180)
    client, runs = _mlflow_runs(tmp_path, "resume-after-interruption")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"KILLED"}, out[-3000:]  # unfinished
    assert all(len(_steps(client, r, "loss")) < 12 for r in runs)

    second = subprocess.run([*script, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    client, runs = _mlflow_runs(tmp_path, "resume-after-interruption")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}  # the same runs, now finished
    for run in runs:
        assert _steps(client, run, "loss") == list(range(1, 13))  # each step once
    assert (
        sorted(_tensorboard_steps(tmp_path / "ray" / "resume-after-interruption", "loss")) == [list(range(1, 13))] * 2
    )
