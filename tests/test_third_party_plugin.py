"""A plugin shipped by a third party: ``examples/trackbridge-trackio``, pip-installed into this environment as a
user installs it, then named like a built-in next to MLflow in a real Tune run; its own test suite (the
conformance kit through the pytest plugin) run as its author runs it; and deliberately broken copies of it
failing the kit with messages that name each fault."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ray import tune

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "trackbridge-trackio"
STEPS = 8


@pytest.fixture(scope="module")
def trackio_installed():
    """``pip install examples/trackbridge-trackio`` (its dependency, trackio, comes from the package index)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(EXAMPLE)],
        check=True,
        timeout=600,
    )
    importlib.invalidate_caches()
    before = os.environ.get("TRACKIO_DIR")
    yield
    if before is None:  # the plugin's directory= option sets it for this process
        os.environ.pop("TRACKIO_DIR", None)


def _subprocess_env(trackio_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TRACKIO_DIR"] = str(trackio_dir)
    return env


def trackio_and_mlflow_trainable(config):
    for step in range(1, STEPS + 1):
        tune.report({"loss": config["lr"] / step, "acc": step / STEPS})
        if config["fail"] and step == 5:
            raise RuntimeError("fails at step 5 on purpose")


def test_the_installed_trackio_plugin_runs_next_to_mlflow_in_a_tune_run_and_both_hold_everything(
    trackio_installed, ray_session, workdir
):
    from mlflow import MlflowClient

    from trackbridge import TrackBridgeCallback
    from trackbridge.discovery import installed_plugins

    [entry] = installed_plugins()["trackio"]
    assert (entry.distribution, entry.value) == ("trackbridge-trackio", "trackbridge_trackio:TrackioPlugin")
    callback = TrackBridgeCallback(
        plugins={
            "trackio": {"directory": str(workdir / "trackio"), "project": "third_party"},
            "mlflow": {"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}"},
        }
    )
    grid = tune.Tuner(
        trackio_and_mlflow_trainable,
        param_space={"lr": tune.grid_search([0.1, 0.2, 0.3]), "fail": tune.sample_from(lambda s: s.config.lr == 0.2)},
        run_config=tune.RunConfig(name="third_party", storage_path=str(workdir / "ray"), callbacks=[callback]),
    ).fit()
    expected = {}
    for i in range(len(grid)):
        r = grid[i]
        failed = r.config["fail"]
        expected[r.metrics["trial_id"]] = (r.config["lr"], list(range(1, (5 if failed else STEPS) + 1)), failed)
    assert len(expected) == 3 and sum(f for *_, f in expected.values()) == 1
    rows = {row["plugin"]: row for row in callback.report["plugins"]}
    assert rows["trackio"]["failed"] == 0 and rows["trackio"]["dropped"] == 0 and rows["mlflow"]["failed"] == 0

    from trackbridge_trackio import read_project

    trackio = read_project("third_party")
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("third_party").experiment_id])
    mlflow = {run.data.tags["trial_id"]: run for run in runs}
    assert sorted(trackio) == sorted(mlflow) == sorted(expected)
    for trial_id, (lr, steps, failed) in expected.items():
        stored = trackio[trial_id]
        assert len(stored.names) == 1 and stored.config["lr"] == lr
        assert stored.series("loss") == [(s, pytest.approx(lr / s)) for s in steps]
        assert stored.steps("acc") == steps
        assert stored.status == ("failed" if failed else "completed")
        if failed:
            assert "fails at step 5 on purpose" in stored.alerts[-1]["text"]
        run = mlflow[trial_id]
        history = client.get_metric_history(run.info.run_id, "loss")
        assert sorted((m.step, m.value) for m in history) == [(s, pytest.approx(lr / s)) for s in steps]
        assert run.info.status == ("FAILED" if failed else "FINISHED")


def test_the_example_distribution_passes_its_own_suite_and_the_kit(trackio_installed, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts="],
        cwd=EXAMPLE,
        env=_subprocess_env(tmp_path / "trackio"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-3000:]
    assert "14 passed" in out.stdout, out.stdout[-3000:]


BROKEN_COPIES = """
import math
import threading

from trackbridge import TrialStatus, hookimpl
from trackbridge.testing.pytest_plugin import PluginConformance
from trackbridge_trackio import TrackioPlugin

from test_conformance import project_for, read_back


class NeverFinishesAFailedTrial(TrackioPlugin):
    @hookimpl
    def trackbridge_trial_complete(self, trial, status, error):
        if status is not TrialStatus.FAILED:
            super().trackbridge_trial_complete(trial, status, error)


class RaisesOnNan(TrackioPlugin):
    @hookimpl
    def trackbridge_trial_result(self, trial, step, metrics):
        if any(isinstance(v, float) and math.isnan(v) for v in metrics.values()):
            raise ValueError("NaN is not supported")
        super().trackbridge_trial_result(trial, step, metrics)


class BlocksInFlush(TrackioPlugin):
    @hookimpl
    def trackbridge_flush(self):
        threading.Event().wait()


class Broken(PluginConformance):
    timeout = 3.0

    def read_back(self, directory):
        return read_back(directory)


class TestNeverFinishesAFailedTrial(Broken):
    @staticmethod
    def plugin(directory):
        return NeverFinishesAFailedTrial(project=project_for(directory))


class TestRaisesOnNan(Broken):
    @staticmethod
    def plugin(directory):
        return RaisesOnNan(project=project_for(directory))


class TestBlocksInFlush(Broken):
    @staticmethod
    def plugin(directory):
        return BlocksInFlush(project=project_for(directory))
"""


def test_broken_copies_of_the_example_fail_the_kit_with_messages_that_name_each_fault(trackio_installed, tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    for name in ("conftest.py", "test_conformance.py"):
        (tests / name).write_text((EXAMPLE / "tests" / name).read_text())
    (tests / "test_broken_copies.py").write_text(textwrap.dedent(BROKEN_COPIES))
    selected = "NeverFinishes and lifecycle or RaisesOnNan and odd_values or BlocksInFlush and lifecycle"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-k", selected, "tests"],
        cwd=tmp_path,
        env=_subprocess_env(tmp_path / "trackio"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    text = out.stdout
    assert out.returncode == 1 and "3 failed" in text, text[-5000:] + out.stderr[-2000:]
    assert "the plugin fails the conformance scenario 'lifecycle'" in text
    assert (
        "trial b: status 'running', expected 'failed' "
        "(trackbridge_trial_complete(status=FAILED) must end the run as failed)" in text
    )
    assert "the plugin fails the conformance scenario 'odd_values'" in text
    assert (
        "- trackbridge_trial_result raised ValueError: NaN is not supported (trial o; step 1; values {loss=1.0, nan=nan"
        in text
    )
    assert "- did not finish within 3s: stuck in trackbridge_flush (running for " in text
