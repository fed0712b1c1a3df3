"""Reliability of the bridge itself, with real Tune runs: isolation, fail_fast, Ctrl+C, exits."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray import tune

from trackbridge import TrackBridgeCallback, TrackerFailure, hookimpl
from trackbridge.testing import RecordingPlugin

SCRIPT = Path(__file__).with_name("scripts") / "driver_exit.py"


def short_trainable(config):
    for i in range(1, 6):
        tune.report({"loss": 1.0 / i})


class ExplodesEverywhere:
    name = "explodes"

    @hookimpl
    def trackbridge_setup(self):
        raise RuntimeError("setup boom")

    @hookimpl
    def trackbridge_trial_start(self, trial):
        raise RuntimeError("start boom")

    @hookimpl
    def trackbridge_trial_result(self, trial, step):
        raise RuntimeError(f"result boom {step}")

    @hookimpl
    def trackbridge_trial_complete(self, trial):
        raise RuntimeError("complete boom")

    @hookimpl
    def trackbridge_experiment_end(self, experiment):
        raise RuntimeError("end boom")


def test_a_plugin_raising_in_every_hook_fails_neither_tune_nor_the_other_plugins(ray_session, workdir):
    rec = RecordingPlugin()
    callback = TrackBridgeCallback(plugins=[ExplodesEverywhere(), rec])
    grid = tune.Tuner(
        short_trainable,
        param_space={"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(name="isolation", storage_path=str(workdir), callbacks=[callback]),
    ).fit()
    assert grid.num_errors == 0 and len(grid) == 2
    for events in rec.by_trial().values():
        assert [e[2] for e in events if e[0] == "result"] == [1, 2, 3, 4, 5]
        assert events[-1][2] == "completed"
    rows = {r["plugin"]: r for r in callback.report["plugins"]}
    assert rows["explodes"]["failed"] == 1 + 2 + 10 + 2 + 1
    assert rows["explodes"]["errors_by_hook"]["trackbridge_trial_result"] == 10
    assert rows["recorder"]["failed"] == 0
    written = json.loads((workdir / "isolation" / "trackbridge_report.json").read_text())
    assert {r["plugin"]: r["failed"] for r in written["plugins"]} == {"explodes": 16, "recorder": 0}


def test_fail_fast_turns_a_plugin_failure_into_a_tune_error(ray_session, workdir):
    class FailsOnce:
        name = "fails_once"

        @hookimpl
        def trackbridge_trial_result(self, step):
            if step == 2:
                raise RuntimeError("tracker rejected step 2")

    def slow_trainable(config):
        import time as _t

        for i in range(1, 30):
            _t.sleep(0.05)
            tune.report({"loss": 1.0 / i})

    callback = TrackBridgeCallback(plugins=[FailsOnce()], fail_fast=True)
    with pytest.raises(TrackerFailure, match="plugin 'fails_once' failed in trackbridge_trial_result.*step 2"):
        tune.run(slow_trainable, callbacks=[callback], storage_path=str(workdir), name="fail_fast", verbose=0)


def _read_events(path: Path) -> list[list]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _check_every_trial_finished(events: list[list]) -> None:
    trials = {e[1] for e in events if e[0] == "trial_start"}
    assert len(trials) == 2
    for tid in trials:
        steps = [e[2] for e in events if e[0] == "result" and e[1] == tid]
        assert steps == list(range(1, len(steps) + 1)), (tid, steps)
        completes = [e for e in events if e[0] == "complete" and e[1] == tid]
        assert completes == [["complete", tid, "unfinished"]]
    assert events[-1][0] == "experiment_end"
    assert sum(e[0] == "result" for e in events) >= 5


def test_ctrl_c_still_drains_the_queue_and_finishes_every_run(tmp_path):
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "sigint", str(events), str(tmp_path / "ray")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120

    def both_trials_running() -> bool:
        recorded = _read_events(events)
        per_trial = {
            e[1]: sum(1 for r in recorded if r[0] == "result" and r[1] == e[1])
            for e in recorded
            if e[0] == "trial_start"
        }
        return len(per_trial) == 2 and min(per_trial.values()) >= 2

    while time.monotonic() < deadline and not both_trials_running():
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=180)
    assert "FIT RETURNED" in out, out[-3000:]
    recorded = _read_events(events)
    _check_every_trial_finished(recorded)
    report = json.loads((tmp_path / "ray" / "interrupt_sigint" / "trackbridge_report.json").read_text())
    [row] = report["plugins"]
    assert row["failed"] == 0 and row["dropped"] == 0
    assert row["delivered"] == len(recorded)


def test_driver_exiting_inside_fit_flushes_through_the_exit_hook(tmp_path):
    events = tmp_path / "events.jsonl"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "exit", str(events), str(tmp_path / "ray")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "FIT RETURNED" not in proc.stdout
    _check_every_trial_finished(_read_events(events))


def many_results_trainable(config):
    for i in range(1, config["n"] + 1):
        tune.report({"loss": 1.0 / i, "payload": [float(i)] * 50})


def test_slow_plugin_gets_backpressure_with_a_bounded_queue_and_loses_nothing(ray_session, workdir):
    slow = RecordingPlugin(name="slow", sleep=0.002)
    callback = TrackBridgeCallback(plugins=[slow], queue_size=20)
    tune.run(
        many_results_trainable,
        config={"n": 400, "x": tune.grid_search([1, 2])},
        callbacks=[callback],
        storage_path=str(workdir),
        name="backpressure",
        verbose=0,
    )
    [row] = callback.report["plugins"]
    assert row["max_queue_depth"] <= 20  # memory is bounded by queue_size whatever the tracker's speed
    assert row["dropped"] == 0 and row["failed"] == 0
    for events in slow.by_trial().values():
        assert [e[2] for e in events if e[0] == "result"] == list(range(1, 401))


def test_a_hung_tracker_is_declared_stuck_and_tuning_goes_on(ray_session, workdir):
    import threading

    release = threading.Event()

    class Hangs:
        name = "hangs"

        @hookimpl
        def trackbridge_trial_result(self, step):
            release.wait(120)  # a network call that never returns

    rec = RecordingPlugin()
    callback = TrackBridgeCallback(plugins=[Hangs(), rec], queue_size=5, stuck_timeout=1.0, drain_timeout=5)
    started = time.monotonic()
    tune.run(
        many_results_trainable,
        config={"n": 100, "x": tune.grid_search([1, 2])},
        callbacks=[callback],
        storage_path=str(workdir),
        name="stuck",
        verbose=0,
    )
    elapsed = time.monotonic() - started
    release.set()
    rows = {r["plugin"]: r for r in callback.report["plugins"]}
    assert "stuck" in rows["hangs"]["disabled_reason"]
    assert rows["hangs"]["dropped"] >= 190  # every event it missed is counted, not silently lost
    assert rows["recorder"]["delivered"] == len([e for e in rec.events if e[0] != "flush"])
    assert sum(e[0] == "result" for e in rec.events) == 200
    assert elapsed < 60
