"""A driver preempted (SIGTERM, as Slurm, Kubernetes and spot reclaims stop it) or crashed (SIGKILL) in the
middle of a run into W&B, MLflow, TensorBoard and Aim, then ``Tuner.restore``: every step exactly once in every
tracker, every run finished. Each tracker is read back with its own reader.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aim_reader import read_repo
from tensorboard.backend.event_processing import event_accumulator as ea
from wandb_reader import read_run, run_files, wait_until_complete

SCRIPT = Path(__file__).with_name("scripts") / "preempted_run.py"
STEPS = 40


def _progress(base: Path, x: int) -> int:
    try:
        return len((base / f"progress-{x}").read_text().split())
    except FileNotFoundError:
        return 0


def _driver_env() -> dict[str, str]:
    """This process's environment without W&B's service address: earlier tests in this process may have
    started a W&B service (and W&B put its address into the environment); each driver starts its own."""
    return {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}


def _run_fresh_and_stop(base: Path, sig: signal.Signals) -> tuple[int, str]:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "fresh", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_driver_env(),
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and min(_progress(base, 1), _progress(base, 2)) < 12:
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    if sig == signal.SIGKILL:
        _wait_until_durable(base, proc)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=180)
    return proc.returncode, out


def _journal_steps(base: Path, plugin: str) -> list[int]:
    """The step each trial's results are durable up to, per the plugin's delivery journal."""
    steps = []
    for path in (base / "ray" / "preempted" / "trackbridge_journal").glob(f"{plugin}*.json"):
        try:
            trials = json.loads(path.read_text()).get("trials") or {}
        except (OSError, ValueError):  # replaced while read
            continue
        steps += [entry.get("step") or 0 for entry in trials.values()]
    return steps


def _wait_until_durable(base: Path, proc: subprocess.Popen) -> None:
    """Until MLflow's and TensorBoard's journals hold both trials up to the last checkpoint step reached. The
    documented limit (docs/reliability.md, section 5): a result not yet flushed when the driver is killed, at or
    below the trial's last checkpoint, is not reported again by Tune and is lost from the tracker; on a loaded
    machine the kill could otherwise land in that window (at most ``flush_interval`` wide)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        checkpoint = max(_progress(base, 1), _progress(base, 2)) // 5 * 5
        held = [_journal_steps(base, plugin) for plugin in ("mlflow", "tensorboard")]
        if all(len(steps) == 2 and min(steps) >= checkpoint for steps in held):
            return
        time.sleep(0.02)


def _mlflow_runs(base: Path) -> dict[str, tuple[str, list[int]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{base}/mlflow.db")
    [experiment] = [e for e in client.search_experiments() if e.name == "preempted"]
    out = {}
    for run in client.search_runs([experiment.experiment_id]):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        out[run.data.tags["trial_id"]] = (run.info.status, sorted(steps))
    return out


def _tensorboard_steps(base: Path) -> dict[str, list[int]]:
    out = {}
    for root, _, files in os.walk(base / "tb"):
        if any(f.startswith("events.out.tfevents") for f in files):
            acc = ea.EventAccumulator(root, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
            acc.Reload()
            out[os.path.basename(root)] = sorted(e.step for e in acc.Scalars("loss"))
    return out


def _wandb_runs(base: Path) -> dict[str, list[tuple[list[int], int | None]]]:
    """Per run id, its parts in order: the training_iteration of every history row, and the exit code."""
    out: dict[str, list[tuple[list[int], int | None]]] = {}
    # Read after the restoring driver has exited: every part is complete or will never be, except that the
    # killed driver's W&B service may still be closing its files. So all parts share one short deadline.
    deadline = time.monotonic() + 5
    for path in run_files(str(base / "wandb")):
        try:
            wait_until_complete(path, timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:  # a part the killed driver never finished: read what it holds
            pass
        run = read_run(path, wait=False)
        if not run.run_id:  # a part whose buffer W&B's service lost with the killed driver (not even its header)
            continue
        steps = [int(r["training_iteration"]) for r in run.history if "training_iteration" in r]
        out.setdefault(run.run_id, []).append((steps, run.exit_code))
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_preempted_or_killed_driver_restored_gives_every_step_once_in_every_tracker(tmp_path, sig):
    code, out = _run_fresh_and_stop(tmp_path, sig)
    if sig == signal.SIGTERM:
        # TrackBridge drains, then hands the signal to Ray's handler: sys.exit(15), which Ray turns into exit
        # code 1 when the signal lands inside one of its own calls (ray.wait). Never SIGABRT (-6) any more.
        assert code in (15, 1), (code, out[-4000:])
        assert "SIGTERM received: draining" in out
        report = json.loads((tmp_path / "ray" / "preempted" / "trackbridge_report.json").read_text())
        assert all(r["failed"] == 0 and r["dropped"] == 0 for r in report["plugins"]), report
    else:
        assert code == -signal.SIGKILL

    restored = subprocess.run(
        [sys.executable, str(SCRIPT), "restore", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_driver_env(),
    )
    assert restored.returncode == 0 and "FIT RETURNED" in restored.stdout, restored.stderr[-4000:]

    every_step = list(range(1, STEPS + 1))
    mlflow_runs = _mlflow_runs(tmp_path)
    assert len(mlflow_runs) == 2
    for trial_id, (status, steps) in mlflow_runs.items():
        assert steps == every_step, ("mlflow", trial_id, steps)
        assert status == "FINISHED", (trial_id, status)
    tensorboard = _tensorboard_steps(tmp_path)
    assert len(tensorboard) == 2
    for run, steps in tensorboard.items():
        assert steps == every_step, ("tensorboard", run, steps)
    if sig == signal.SIGTERM:
        # Aim after SIGTERM: one run per trial (reopened), every step. After SIGKILL, not yet: a driver killed while
        # Aim was still creating the repo leaves Aim's structured_db_lock behind (known issue, docs/aim.md).
        aim_runs = read_repo(str(tmp_path / "aim"))
        assert len(aim_runs) == 2
        for trial_id, run in aim_runs.items():
            assert [step for step, _ in run.points("loss")] == every_step, ("aim", trial_id, run.points("loss"))
            assert run.params["status"] == "FINISHED" and run.ended, (trial_id, run.params)
    wandb_runs = _wandb_runs(tmp_path)
    assert len(wandb_runs) == 2
    for run_id, parts in wandb_runs.items():
        restored_steps, exit_code = parts[-1]
        assert exit_code == 0, (run_id, parts)  # the restored part finished
        steps = [step for part_steps, _ in parts for step in part_steps]
        if sig == signal.SIGTERM:
            assert sorted(steps) == every_step, ("wandb", run_id, parts)
        else:
            # W&B's limit: its service process buffers the offline run file and loses the buffer when the driver
            # is killed. TrackBridge counts W&B rows as stored only once a run finished, so the restored part
            # holds every step from the trial's last checkpoint on, and no step is stored twice.
            first = restored_steps[0]
            assert (first - 1) % 5 == 0 and restored_steps == list(range(first, STEPS + 1)), ("wandb", run_id, parts)
            assert len(steps) == len(set(steps)), ("wandb", run_id, parts)
