"""Plugins in processes of their own (``isolate=``): same results, the SDK kept out of the driver, and a
plugin process that dies or a Ctrl+C to the whole process group never costs the Tune run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray import tune

from tests import wandb_reader
from trackbridge import TrackBridgeCallback, TrackerFailure, hookimpl
from trackbridge.testing import RecordingPlugin

SCRIPT = Path(__file__).with_name("scripts") / "driver_exit.py"


def trainable(config):
    for step in range(1, 21):
        tune.report({"loss": 1.0 / step, "eval": {"acc": step / 20}})


def test_isolated_plugins_store_everything_like_threaded_ones(ray_session, workdir):
    plugins = {
        "wandb": {"mode": "offline", "dir": str(workdir), "project": "iso"},
        "mlflow": {"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}"},
        "tensorboard": {"logdir": str(workdir / "tb")},
    }
    callback = TrackBridgeCallback(plugins=plugins, isolate=True)
    grid = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(name="iso", storage_path=str(workdir / "ray"), callbacks=[callback]),
    ).fit()
    trial_ids = {r.metrics["trial_id"] for r in grid}
    rows = {r["plugin"]: r for r in callback.report["plugins"]}
    for name in plugins:
        # counted in the plugin's own process and reported back: per trial start, 20 results, complete; plus
        # setup, experiment start and end
        assert rows[name]["delivered"] == 2 * 22 + 3, rows[name]
        assert rows[name]["failed"] == 0 and rows[name]["dropped"] == 0 and rows[name]["drained"]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("iso").experiment_id])
    assert {r.data.tags["trial_id"] for r in runs} == trial_ids
    for run in runs:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "eval/acc")] == list(range(1, 21))
        assert run.info.status == "FINISHED"
    wb = wandb_reader.runs_by_id(str(workdir))
    assert set(wb) == trial_ids and all(len(parts[0].history) == 20 for parts in wb.values())
    # Each tracker names the user's program as the runs' source, not TrackBridge's plugin process
    main = sys.modules["__main__"]
    driver_program = f"-m {main.__spec__.name}" if main.__spec__ else main.__file__
    for run in runs:
        assert run.data.tags["mlflow.source.name"] == sys.argv[0]
    for parts in wb.values():
        assert (parts[0].program, parts[0].args) == (driver_program, sys.argv[1:])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for run_dir in (workdir / "tb").iterdir():
        acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        acc.Reload()
        assert [e.step for e in acc.Scalars("loss")] == list(range(1, 21))


class DiesMidRun:
    name = "dies"

    @hookimpl
    def trackbridge_trial_result(self, step):
        if step == 5:
            os._exit(17)  # the tracker's process crashes hard (segfault, OOM kill, ...)


def test_a_plugin_process_that_dies_is_reported_and_tuning_goes_on(ray_session, workdir):
    rec = RecordingPlugin()
    callback = TrackBridgeCallback(plugins=[DiesMidRun(), rec], isolate=["dies"])
    grid = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(name="dies", storage_path=str(workdir), callbacks=[callback]),
    ).fit()
    assert grid.num_errors == 0
    rows = {r["plugin"]: r for r in callback.report["plugins"]}
    assert "process died" in rows["dies"]["disabled_reason"] and "17" in rows["dies"]["disabled_reason"]
    assert rows["dies"]["dropped"] > 0
    assert rows["recorder"]["failed"] == 0 and sum(e[0] == "result" for e in rec.events) == 40


def test_a_drain_timeout_with_an_isolated_plugin_mid_batch_counts_every_event_once(ray_session, workdir, caplog):
    """Issue 12 item 7: the drain's close request and a batch still in the child's hands share one connection,
    used by the worker thread alone; a timeout never mixes replies up or raises out of Tune's callback."""
    slow = RecordingPlugin(name="slow", sleep=0.3)
    callback = TrackBridgeCallback(plugins=[slow], isolate=["slow"], drain_timeout=1.0)
    grid = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(name="drain_mid_batch", storage_path=str(workdir), callbacks=[callback]),
    ).fit()
    assert grid.num_errors == 0
    [row] = callback.report["plugins"]
    emitted = 1 + 1 + 2 * (1 + 20 + 1) + 1  # setup, experiment start, per trial start/results/complete, end
    assert row["delivered"] + row["failed"] + row["dropped"] == emitted, row
    assert row["dropped"] > 0 and not row["drained"]
    assert not [r for r in caplog.records if r.levelname == "ERROR" and "Traceback" in (r.exc_text or "")]


def test_fail_fast_reaches_tune_from_an_isolated_plugin(ray_session, workdir):
    class Rejects:
        name = "rejects"

        @hookimpl
        def trackbridge_trial_result(self, step):
            raise ValueError(f"rejected step {step}")

    def slow(config):
        for step in range(1, 60):
            time.sleep(0.05)
            tune.report({"loss": 1.0 / step})

    callback = TrackBridgeCallback(plugins=[Rejects()], isolate=True, fail_fast=True)
    with pytest.raises(TrackerFailure, match="plugin 'rejects' failed in trackbridge_trial_result.*rejected step"):
        tune.run(slow, callbacks=[callback], storage_path=str(workdir), name="iso_fail_fast", verbose=0)


def test_isolate_names_must_be_plugins():
    with pytest.raises(ValueError, match="isolate= names"):
        TrackBridgeCallback(plugins=[RecordingPlugin()], isolate=["mlflow"])


def test_ctrl_c_to_the_whole_process_group_still_drains_isolated_plugins(tmp_path):
    """A terminal's Ctrl+C reaches every process of the group; the plugin processes ignore it and are
    drained by the driver, which handles it."""
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "sigint_isolated", str(events), str(tmp_path / "ray")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    def read() -> list:
        return [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        per_trial: dict = {}
        for e in read():
            if e[0] == "result":
                per_trial[e[1]] = per_trial.get(e[1], 0) + 1
        if len(per_trial) == 2 and min(per_trial.values()) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=180)
    assert "FIT RETURNED" in out, out[-3000:]
    recorded = read()
    trials = {e[1] for e in recorded if e[0] == "trial_start"}
    assert len(trials) == 2
    for tid in trials:
        steps = [e[2] for e in recorded if e[0] == "result" and e[1] == tid]
        assert steps == list(range(1, len(steps) + 1))
        assert [e for e in recorded if e[0] == "complete" and e[1] == tid] == [["complete", tid, "unfinished"]]
    assert recorded[-1][0] == "experiment_end"
    report = json.loads((tmp_path / "ray" / "interrupt_sigint_isolated" / "trackbridge_report.json").read_text())
    [row] = report["plugins"]
    assert row["failed"] == 0 and row["dropped"] == 0 and row["delivered"] == len(recorded)
