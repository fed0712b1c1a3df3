"""The conformance kit (``trackbridge.testing.conformance``), run on every first-party plugin with each
tracker's own reader, and on a broken plugin to show that the kit does fail."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from trackbridge import hookimpl
from trackbridge.testing import RecordingPlugin
from trackbridge.testing.conformance import SCENARIOS, StoredRuns, check_plugin

STATUS_OF_MLFLOW = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "unfinished"}
STATUS_OF_EXIT_CODE = {0: "completed", 1: "failed", 2: "unfinished"}


def _mlflow_read_back(d: Path) -> StoredRuns:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{d / 'mlflow.db'}")
    stored = StoredRuns()
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            tid = run.data.tags.get("trial_id")
            if tid is None:
                continue
            stored.runs_per_trial[tid] = stored.runs_per_trial.get(tid, 0) + 1
            stored.steps[tid] = [
                m.step
                for m in sorted(client.get_metric_history(run.info.run_id, "loss"), key=lambda m: (m.timestamp, m.step))
            ]
            stored.statuses[tid] = STATUS_OF_MLFLOW.get(run.info.status, run.info.status)
            logged = client.get_metric_history(run.info.run_id, "batch_loss")
            if logged:
                stored.logged_steps[tid] = [m.step for m in sorted(logged, key=lambda m: (m.timestamp, m.step))]
    return stored


def _wandb_read_back(d: Path) -> StoredRuns:
    from trackbridge_wandb_reader import runs_by_id

    stored = StoredRuns()
    for run_id, parts in runs_by_id(str(d)).items():  # a restored offline run: several parts, one id
        stored.steps[run_id] = [row["training_iteration"] for part in parts for row in part.history if "loss" in row]
        stored.statuses[run_id] = STATUS_OF_EXIT_CODE.get(parts[-1].exit_code, str(parts[-1].exit_code))
        logged = [row["trial_step"] for part in parts for row in part.history if "batch_loss" in row]
        if logged:
            stored.logged_steps[run_id] = logged
    return stored


def _tensorboard_read_back(d: Path) -> StoredRuns:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stored = StoredRuns()
    for run_dir in sorted((d / "tb").iterdir()):
        tid = run_dir.name.removeprefix("conformance_")
        acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        stored.steps[tid] = [e.step for e in acc.Scalars("loss")]
        if "batch_loss" in acc.Tags()["scalars"]:
            stored.logged_steps[tid] = [e.step for e in acc.Scalars("batch_loss")]
        texts = [e.tensor_proto.string_val[0].decode() for e in acc.Tensors("trial_status")]
        if texts:
            stored.statuses[tid] = "failed" if "failed" in texts[-1] else texts[-1]
    return stored


def _assert_conforms(report) -> None:
    assert report.ok, "\n" + report.summary()
    assert len(report.results) == len(SCENARIOS)


def test_mlflow_plugin_conforms(tmp_path):
    from trackbridge_mlflow import MlflowPlugin

    _assert_conforms(
        check_plugin(lambda d: MlflowPlugin(tracking_uri=f"sqlite:///{d / 'mlflow.db'}"), _mlflow_read_back, tmp_path)
    )


def test_wandb_plugin_conforms(tmp_path):
    from trackbridge_wandb import WandbPlugin

    _assert_conforms(
        check_plugin(
            lambda d: WandbPlugin(mode="offline", dir=str(d), project="conformance"), _wandb_read_back, tmp_path
        )
    )


def test_tensorboard_plugin_conforms(tmp_path):
    from trackbridge_tensorboard import TensorBoardPlugin

    _assert_conforms(check_plugin(lambda d: TensorBoardPlugin(logdir=str(d / "tb")), _tensorboard_read_back, tmp_path))


def test_recording_plugin_conforms_without_a_reader(tmp_path):
    _assert_conforms(check_plugin(lambda d: RecordingPlugin(), None, tmp_path))


class ForgetfulTracker:
    """Loses every step (results and in-trial logs) after the first few, opens a new run on every start, and
    chokes on None."""

    name = "forgetful"
    stores: dict[Path, StoredRuns] = {}

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __getstate__(self):
        return {"directory": self.directory}

    @hookimpl
    def trackbridge_trial_start(self, trial):
        stored = self.stores.setdefault(self.directory, StoredRuns())
        stored.runs_per_trial[trial.trial_id] = stored.runs_per_trial.get(trial.trial_id, 0) + 1
        stored.steps.setdefault(trial.trial_id, [])

    @hookimpl
    def trackbridge_trial_result(self, trial, step, metrics):
        if any(v is None for v in metrics.values()):
            raise TypeError("None is not a number")
        if step <= 2:
            self.stores[self.directory].steps[trial.trial_id].append(step)

    @hookimpl
    def trackbridge_trial_log(self, trial, step, values):
        if "batch_loss" in values and step <= 2:
            self.stores[self.directory].logged_steps.setdefault(trial.trial_id, []).append(step)

    @hookimpl
    def trackbridge_trial_complete(self, trial, status):
        self.stores[self.directory].statuses[trial.trial_id] = "completed"  # even when it failed


def test_the_kit_fails_a_plugin_that_loses_data_duplicates_runs_or_raises(tmp_path):
    report = check_plugin(ForgetfulTracker, lambda d: ForgetfulTracker.stores[d], tmp_path)
    assert not report.ok
    by_name = {r.name: r for r in report.results}
    text = report.summary()
    assert "loss stored at steps [1, 2], expected [1, 2, 3, 4, 5]" in text
    assert any("status 'completed', expected 'failed'" in p for p in by_name["lifecycle"].problems)
    assert any("2 runs in the tracker, expected 1" in p for p in by_name["paused_and_resumed"].problems)
    assert any(
        p.startswith("trackbridge_trial_result raised TypeError: None is not a number (trial o; step 1;")
        and p.endswith("(3 calls failed)")
        for p in by_name["odd_values"].problems
    )
    # the trial's continuation ran in another interpreter, whose memory this tracker's reader cannot see
    assert by_name["resumed_in_a_new_interpreter"].problems == [
        "trial r: loss stored at steps [1, 2], expected [1, 2, 3, 4, 5, 6]: missing [3, 4, 5, 6]"
    ]
    assert by_name["in_trial_log"].problems == [
        "trial l: loss stored at steps [1, 2], expected [1, 2, 3]: missing [3]",
        "trial l: batch_loss stored at steps [1, 2], expected [1, 2, 3, 4, 5, 6]: missing [3, 4, 5, 6]",
    ]


class BlockingFlush:
    """Never returns from its first flush."""

    name = "blocking"

    @hookimpl
    def trackbridge_trial_result(self, step):
        pass

    @hookimpl
    def trackbridge_flush(self):
        threading.Event().wait()


def test_the_kit_names_the_hook_a_plugin_is_stuck_in(tmp_path):
    started = time.monotonic()
    report = check_plugin(lambda d: BlockingFlush(), None, tmp_path, scenarios=["lifecycle"], timeout=1.0)
    assert time.monotonic() - started < 30
    [problem] = report.results[0].problems
    assert problem.startswith("did not finish within 1s: stuck in trackbridge_flush (running for "), problem
