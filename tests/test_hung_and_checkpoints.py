"""Issue 12, items 2 and 6: a hung tracker never spoils the drain of the healthy ones (the per-call watchdog),
and every reported checkpoint reaches the trackers that upload checkpoints although Tune deletes it
(``CheckpointConfig(num_to_keep=1)``): it is pinned when reported.

Run as a script, this module is the driver of ``test_a_driver_exiting_with_a_hung_tracker_still_exits``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from ray import tune

from trackbridge import CheckpointInfo, TrackBridgeCallback, TrialInfo, hookimpl
from trackbridge.checkpoint_pins import CheckpointPins
from trackbridge.delivery import Dispatcher
from trackbridge.emitter import HookEmitter
from trackbridge.loading import resolve
from trackbridge.process_transport import transport_for
from trackbridge.testing import RecordingPlugin
from trackbridge.transport import DeliveryOptions
from trackbridge_mlflow import MlflowPlugin
from trackbridge_wandb import WandbPlugin

RELEASE = threading.Event()  # lets the hung plugins of a test go once it is over
HUNG = threading.Event()  # set once a hung plugin is inside its call


class Hangs:
    """A tracker whose first result call never returns (a network call without a timeout)."""

    name = "hangs"

    @hookimpl
    def trackbridge_trial_result(self, step):
        HUNG.set()
        RELEASE.wait(300)


def results_trainable(config):
    for i in range(1, config["n"] + 1):
        time.sleep(0.05)
        tune.report({"v": float(i)})


def _new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.is_alive()]


# --------------------------------------------------------------------------------------------- item 2: hung tracker
def test_a_hung_tracker_next_to_mlflow_is_declared_stuck_and_mlflow_drains_in_full(ray_session, workdir):
    from mlflow import MlflowClient

    RELEASE.clear()
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    # MLflow's slowest call is the one creating its database's tables (seconds on a busy machine): done here, before
    # the run, the plugin's calls take milliseconds (experiment, run, metrics), far below stuck_timeout. The drain
    # ends when the hung call has run for stuck_timeout (5 s), long before the drain timeout (120 s).
    MlflowClient(tracking_uri=uri).search_experiments()
    callback = TrackBridgeCallback(
        plugins=[Hangs(), ("mlflow", {"tracking_uri": uri, "experiment_name": "hung"})],
        stuck_timeout=5,
        drain_timeout=120,
    )
    before = set(threading.enumerate())
    started = time.monotonic()
    tune.Tuner(
        results_trainable,
        param_space={"n": 10},
        run_config=tune.RunConfig(name="hung", storage_path=str(workdir / "ray"), callbacks=[callback], verbose=0),
    ).fit()
    fit_seconds = time.monotonic() - started
    left = _new_threads(before)
    try:
        report = callback.report
        rows = {r["plugin"]: r for r in report["plugins"]}
        print(f"\nfit() {fit_seconds:.1f}s, drain {report['drain_seconds']:.1f}s; rows {rows}")
        hangs, mlflow = rows["hangs"], rows["mlflow"]
        assert hangs["disabled_reason"].startswith("stuck: a call to trackbridge_trial_result has run for")
        assert not hangs["drained"]
        assert hangs["delivered"] + hangs["failed"] + hangs["dropped"] == 10  # every result counted once
        # MLflow is judged on its own: it delivered everything and is not blamed
        assert mlflow["drained"] and mlflow["dropped"] == 0 and mlflow["failed"] == 0
        assert mlflow["disabled_reason"] is None
        # the drain stopped waiting for the hung plugin at its stuck_timeout, long before the drain timeout
        assert report["drain_seconds"] < 90
        # only the hung plugin's thread outlives fit(), and it cannot keep the interpreter alive
        workers = {"trackbridge-hangs", "trackbridge-mlflow"}
        assert [(t.name, t.daemon) for t in left if t.name in workers] == [("trackbridge-hangs", True)]
    finally:
        RELEASE.set()
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("hung").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "v")] == list(range(1, 11))
    assert run.info.status == "FINISHED"


def _trial(trial_id: str) -> TrialInfo:
    return TrialInfo(trial_id=trial_id, trial_name=f"t_{trial_id}", experiment_name="e")


def test_a_call_running_past_stuck_timeout_marks_its_plugin_stuck_without_a_full_queue():
    RELEASE.clear()
    rec = RecordingPlugin()
    dispatcher = Dispatcher(resolve([Hangs(), rec]), DeliveryOptions(stuck_timeout=0.5))
    dispatcher.start()
    emit = HookEmitter(dispatcher.submit)
    trial = _trial("a")
    try:
        emit.trial_result(trial, 1, {"v": 1.0})
        time.sleep(1.0)  # the first call hangs; the queue (10,000) is far from full
        for step in range(2, 6):
            emit.trial_result(trial, step, {"v": float(step)})
        stats = {s.plugin: s for s in dispatcher.stats()}
        assert stats["hangs"].disabled_reason.startswith("stuck: a call to trackbridge_trial_result")
        started = time.monotonic()
        finished = dispatcher.close(60)
        assert time.monotonic() - started < 30  # not the drain timeout: a stuck plugin is never waited for
        assert finished == {"hangs": False, "recorder": True}
        assert stats["hangs"].dropped == 5 and stats["hangs"].delivered == 0
        assert stats["recorder"].delivered == 5 and stats["recorder"].dropped == 0
    finally:
        RELEASE.set()
    time.sleep(0.2)
    assert stats["hangs"].delivered == 0  # the call that returned after the drain gave up is not counted twice


def test_a_plugin_blocked_in_one_call_through_the_whole_drain_is_reported_stuck_and_the_others_drained():
    RELEASE.clear()
    HUNG.clear()
    rec = RecordingPlugin(sleep=0.01)
    dispatcher = Dispatcher(resolve([Hangs(), rec]), DeliveryOptions())  # stuck_timeout: 300 s
    dispatcher.start()
    emit = HookEmitter(dispatcher.submit)
    try:
        for step in range(1, 51):
            emit.trial_result(_trial("a"), step, {"v": float(step)})
        assert HUNG.wait(60)  # the plugin is in its call when the drain begins (a busy machine starts threads late)
        started = time.monotonic()
        finished = dispatcher.close(2.0)
        assert time.monotonic() - started < 30
        stats = {s.plugin: s for s in dispatcher.stats()}
        assert finished == {"hangs": False, "recorder": True}
        reason = stats["hangs"].disabled_reason
        assert reason.startswith("stuck: a call to trackbridge_trial_result has run for")
        assert "did not finish within the drain timeout (2.0s); 50 events undelivered" in reason
        assert stats["hangs"].dropped == 50
        recorder = stats["recorder"]
        assert (recorder.delivered, recorder.dropped, recorder.disabled_reason) == (50, 0, None)
    finally:
        RELEASE.set()


def test_the_drain_still_runs_where_no_new_thread_may_start(monkeypatch):
    """An exit hook under Python 3.12.0 and 3.12.1 cannot start threads: the workers are drained one by one."""
    rec = RecordingPlugin()
    dispatcher = Dispatcher(resolve([rec]), DeliveryOptions())
    dispatcher.start()
    HookEmitter(dispatcher.submit).trial_result(_trial("a"), 1, {"v": 1.0})

    def refuse(thread: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert dispatcher.close(30) == {"recorder": True}
    assert [e[:3] for e in rec.events if e[0] == "result"] == [("result", "a", 1)]


def _exit_driver(storage: str) -> None:
    """The subprocess: a hung tracker next to a healthy one, and ``sys.exit`` from inside ``fit()``; the exit
    hook drains (default drain_timeout: 600 s) and the interpreter must still exit soon."""
    import ray

    class ExitInsideFit(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result["training_iteration"] >= 3:
                sys.exit(3)

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    # stuck_timeout far below the default drain_timeout (600 s), and far above the recorder's calls (microseconds)
    callback = TrackBridgeCallback(plugins=[Hangs(), RecordingPlugin()], stuck_timeout=2)
    tune.Tuner(
        results_trainable,
        param_space={"n": 200},
        run_config=tune.RunConfig(
            name="exit_hung", storage_path=storage, callbacks=[callback, ExitInsideFit()], verbose=0
        ),
    ).fit()


def test_a_driver_exiting_with_a_hung_tracker_still_exits(workdir):
    storage = workdir / "ray"
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, __file__, "exit", str(storage)], cwd=workdir, capture_output=True, timeout=240
        )
    except subprocess.TimeoutExpired as exc:  # before the watchdog: the exit drain waited drain_timeout (600 s)
        pytest.fail(f"the driver did not exit: {exc}")
    print(f"\ndriver exited with {done.returncode} after {time.monotonic() - started:.1f}s")
    assert done.returncode == 3, done.stderr.decode()[-3000:]
    report = json.loads((storage / "exit_hung" / "trackbridge_report.json").read_text())
    rows = {r["plugin"]: r for r in report["plugins"]}
    assert rows["hangs"]["disabled_reason"].startswith("stuck: a call to trackbridge_trial_result")
    assert rows["recorder"]["drained"] and rows["recorder"]["dropped"] == 0
    assert report["drain_seconds"] < 120


# --------------------------------------------------------------------------------------------- item 6: checkpoints
GATES: dict[str, threading.Event] = {}  # trial id -> set when Tune has completed the trial


class TrialDone(tune.Callback):
    def on_trial_complete(self, iteration, trials, trial, **info):
        GATES.setdefault(trial.trial_id, threading.Event()).set()


def _gate(trial: TrialInfo) -> None:
    """Hold the plugin's worker until Tune has finished the trial (and deleted all but its last checkpoint)."""
    GATES.setdefault(trial.trial_id, threading.Event()).wait(120)


class GatedMlflow(MlflowPlugin):
    """MLflow whose worker reaches the trial's checkpoints only after Tune has deleted all but the last."""

    @hookimpl
    def trackbridge_trial_start(self, trial, resumed, last_step):
        _gate(trial)
        super().trackbridge_trial_start(trial, resumed, last_step)


class GatedWandb(WandbPlugin):
    """The same for W&B."""

    @hookimpl
    def trackbridge_trial_start(self, trial, resumed, last_step):
        _gate(trial)
        super().trackbridge_trial_start(trial, resumed, last_step)


def checkpoint_every_step(config):
    for i in range(1, config["n"] + 1):
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "state.json"), "w") as f:
            json.dump({"step": i}, f)
        tune.report({"loss": 1.0 / i}, checkpoint=tune.Checkpoint.from_directory(d))


class PinWatcher:
    """Records, per checkpoint call, its pin and how many pins of earlier calls still exist."""

    name = "pin_watcher"

    def __init__(self):
        self.seen: list[tuple[int | None, str | None, int]] = []

    @hookimpl
    def trackbridge_trial_checkpoint(self, checkpoint: CheckpointInfo):
        earlier_left = sum(os.path.exists(pinned) for _, pinned, _ in self.seen if pinned)
        with checkpoint.local_copy() as directory:
            assert json.loads((Path(directory) / "state.json").read_text())["step"] == checkpoint.step
        self.seen.append((checkpoint.step, checkpoint.pinned_path, earlier_left))


def test_checkpoints_tune_deletes_before_the_trackers_reach_them_still_become_artifacts(
    ray_session, workdir, monkeypatch
):
    from mlflow import MlflowClient

    from tests.wandb_reader import artifact_manifest, runs_by_id

    for key, sub in (("DATA", "data"), ("CACHE", "cache"), ("CONFIG", "config"), ("ARTIFACT", "artifacts")):
        monkeypatch.setenv(f"WANDB_{key}_DIR", str(workdir / "wandb_home" / sub))
    GATES.clear()
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    wandb_dir = workdir / "wandb_runs"
    steps = 6
    watcher = PinWatcher()
    callback = TrackBridgeCallback(
        plugins=[
            GatedMlflow(tracking_uri=uri, experiment_name="pinned", save_artifact=True),
            GatedWandb(mode="offline", dir=str(wandb_dir), project="p", upload_checkpoints=True),
            watcher,
        ],
        isolate=False,  # the gates are events of this process: the plugins must run in its threads
    )
    grid = tune.Tuner(
        checkpoint_every_step,
        param_space={"n": steps},
        run_config=tune.RunConfig(
            name="pinned",
            storage_path=str(workdir / "ray"),
            callbacks=[callback, TrialDone()],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=0,
        ),
    ).fit()
    [result] = list(grid)
    trial_id = result.metrics["trial_id"]
    # Tune kept one checkpoint: the trackers reached the others only after Tune had deleted them
    assert len(list(Path(result.path).glob("checkpoint_*"))) == 1
    rows = {r["plugin"]: r for r in callback.report["plugins"]}
    for name in ("mlflow", "wandb", "pin_watcher"):
        assert rows[name]["failed"] == 0 and rows[name]["dropped"] == 0, rows[name]
    # every pin was released once every plugin had passed it, and none is left
    assert [step for step, _, _ in watcher.seen] == list(range(1, steps + 1))
    pins = [pinned for _, pinned, _ in watcher.seen]
    assert all(pins) and len(set(pins)) == steps
    assert not any(os.path.exists(Path(p).parents[1]) for p in pins)

    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("pinned").experiment_id])
    listed = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert listed == [f"checkpoints/{i}" for i in range(1, steps + 1)]
    for i in range(1, steps + 1):
        local = client.download_artifacts(run.info.run_id, f"checkpoints/{i}/state.json", str(workdir))
        assert json.loads(Path(local).read_text()) == {"step": i}

    [[wandb_run]] = runs_by_id(str(wandb_dir)).values()
    assert wandb_run.run_id == trial_id
    assert [sorted(a.aliases) for a in wandb_run.artifacts] == [["latest", f"step_{i}"] for i in range(1, steps + 1)]
    for artifact, i in zip(wandb_run.artifacts, range(1, steps + 1), strict=True):
        assert artifact.type == "model"
        assert artifact_manifest(artifact)["state.json"]["size"] == len(json.dumps({"step": i}))


def test_pins_are_released_as_soon_as_every_plugin_has_passed_them(ray_session, workdir):
    steps = 20
    watcher = PinWatcher()
    callback = TrackBridgeCallback(plugins=[watcher])
    tune.Tuner(
        checkpoint_every_step,
        param_space={"n": steps},
        run_config=tune.RunConfig(
            name="released",
            storage_path=str(workdir / "ray"),
            callbacks=[callback],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=0,
        ),
    ).fit()
    assert [step for step, _, _ in watcher.seen] == list(range(1, steps + 1))
    # the watcher is the only plugin taking checkpoints: when it reaches a checkpoint, the earlier pins are gone
    assert all(pinned for _, pinned, _ in watcher.seen)
    assert [earlier_left for _, _, earlier_left in watcher.seen] == [0] * steps
    assert not any(os.path.exists(pinned) for _, pinned, _ in watcher.seen)


def test_a_pin_is_hard_linked_and_an_isolated_plugin_releases_it_in_its_own_process(tmp_path):
    checkpoint = tmp_path / "trial" / "checkpoint_000001"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.json").write_text('{"step": 1}')
    rec, watcher = RecordingPlugin(), PinWatcher()
    dispatcher = Dispatcher(resolve([rec, watcher]), DeliveryOptions(), transport_for=transport_for(["pin_watcher"]))
    pins = CheckpointPins.for_plugins(
        [w.plugin for w in dispatcher.workers]  # both take checkpoints: the recorder here, the watcher in its process
    )
    captured: list = []

    def submit(call) -> None:
        captured.append(call)
        dispatcher.submit(call)

    try:
        # Queued before the workers start, then Tune's copy is deleted: the plugins can only read the pin.
        HookEmitter(pins.sink(submit)).trial_checkpoint(_trial("a"), CheckpointInfo(path=str(checkpoint), step=1))
        pinned = Path(captured[0].kwargs["checkpoint"].pinned_path)
        assert (pinned / "state.json").stat().st_ino == (checkpoint / "state.json").stat().st_ino  # a hard link
        shutil.rmtree(checkpoint)
        dispatcher.start()
        assert dispatcher.close(60) == {"recorder": True, "pin_watcher": True}
        assert not pinned.parents[1].exists()  # released by the recorder here and by the watcher's process
        assert {s.plugin: s.delivered for s in dispatcher.stats()} == {"recorder": 1, "pin_watcher": 1}
    finally:
        dispatcher.close(60)
        pins.close()
    assert not pinned.parents[2].exists()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_hung_and_checkpoints import _exit_driver as driver  # its classes pickle by reference, not by value

    driver(sys.argv[2])
