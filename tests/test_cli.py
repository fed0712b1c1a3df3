"""The ``trackbridge`` command, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.aim_reader import read_repo
from tests.comet_reader import by_trial
from tests.thirdparty.fake_dist import make_distribution


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trackbridge.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_plugins_lists_builtins_and_a_third_party_plugin(tmp_path):
    site = make_distribution(tmp_path / "site")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    out = _run("plugins", "--json", env=env)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    for name in ("wandb", "mlflow", "tensorboard", "aim", "comet"):
        assert rows[name]["distribution"] == "trackbridge" and rows[name]["status"] == "ok"
        assert "trackbridge_trial_result" in rows[name]["hooks"]
    assert rows["wandb"]["sdk"] == "wandb" and rows["mlflow"]["sdk"] == "mlflow" and rows["aim"]["sdk"] == "aim"
    rec = rows["recorder"]
    assert (rec["distribution"], rec["version"]) == ("acme_trackbridge_recorder", "1.2.3")
    assert "trackbridge_trial_complete" in rec["hooks"]
    assert rows["needs_sdk"]["status"].startswith("missing surely_not_an_installed_sdk_xyz")

    text = _run("plugins", env=env).stdout
    assert "recorder  (acme_trackbridge_recorder 1.2.3; acme_recorder:EntryPointRecorder)" in text
    assert "tracker SDK: mlflow: importable" in text

    only = _run("plugins", "--hook", "trial_result", "--json", env=env)
    names = {r["name"] for r in json.loads(only.stdout)}
    assert "acme_hooks" in names and "needs_sdk" not in names


def test_demo_runs_offline_into_every_installed_tracker(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_"))}
    out = subprocess.run(
        [sys.executable, "-m", "trackbridge.cli", "demo", "--trials", "2", "--results", "6", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for name in ("wandb", "mlflow", "tensorboard", "aim", "comet"):  # every installed plugin
        assert f"{name:<12} delivered=" in out.stdout and "failed=0 dropped=0" in out.stdout
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    assert len(runs) == 2
    assert all(len(client.get_metric_history(r.info.run_id, "eval/loss")) == 6 for r in runs)
    assert len(list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))) == 2
    assert len(list((tmp_path / "ray_results" / "demo").glob("*/events.out.tfevents.*"))) >= 2
    aim_runs = read_repo(str(tmp_path))
    assert len(aim_runs) == 2 and all(len(run.points("eval/loss")) == 6 for run in aim_runs.values())
    comet = by_trial(tmp_path / "comet")
    assert len(comet) == 2 and all(len(e.series("eval/loss")) == 6 for e in comet.values())
