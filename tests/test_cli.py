"""The ``trackbridge`` command, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.aim_reader import read_repo
from tests.comet_reader import by_trial
from tests.thirdparty.fake_dist import make_distribution
from tests.wandb_reader import read_runs


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


TRACKERS = ("wandb", "mlflow", "tensorboard", "aim", "comet")
DEMO_METRICS = ("loss", "accuracy", "eval/loss", "eval/perplexity")


def _mlflow_stored(root) -> tuple[int, int, dict[str, int], int]:
    """(runs, metric points, statuses, artifact files), read with MlflowClient."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    points = sum(len(client.get_metric_history(r.info.run_id, m)) for r in runs for m in DEMO_METRICS)
    statuses: dict[str, int] = {}
    for r in runs:
        statuses[r.info.status] = statuses.get(r.info.status, 0) + 1

    def files(run_id, path=None):
        return sum(files(run_id, a.path) if a.is_dir else 1 for a in client.list_artifacts(run_id, path))

    return len(runs), points, statuses, sum(files(r.info.run_id) for r in runs)


def _tensorboard_points(root) -> tuple[int, int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = points = 0
    for trial_dir in sorted(p for p in (root / "ray_results" / "demo").iterdir() if p.is_dir()):
        acc = EventAccumulator(str(trial_dir), size_guidance={"scalars": 0})
        acc.Reload()
        found = [t for t in acc.Tags()["scalars"] if t in DEMO_METRICS]
        runs += bool(found)
        points += sum(len(acc.Scalars(t)) for t in found)
    return runs, points


def test_demo_runs_offline_into_every_installed_tracker_and_its_table_is_what_the_trackers_hold(tmp_path):
    # as a user runs it: no tracker settings, Tune's own loggers on (the demo keeps Tune's TensorBoard logger off)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_", "TUNE_DISABLE_AUTO"))}
    out = subprocess.run(
        [sys.executable, "-m", "trackbridge.cli", "demo", "--trials", "3", "--results", "8", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "the last trial fails on purpose at step 3" in text and "ASHA" in text
    assert "Number of trials" in text or "Trial name" in text  # Tune's progress table while it ran
    table = json.loads((tmp_path / "stored.json").read_text())
    tune = table["tune"]
    # 3 trials; the failing one reported steps 1-2; ASHA may stop a poor one early (grace period 3)
    assert tune["runs"] == 3 and tune["statuses"] == {"completed": 2, "failed": 1}
    assert 2 * 4 + 2 * 3 * 4 <= tune["metric_points"] <= 2 * 4 + 2 * 8 * 4
    for name in TRACKERS:  # every installed plugin, each line as printed, each equal to what Tune reported
        got = table["trackers"][name]
        assert got is not None, name
        assert (got["runs"], got["metric_points"], got["statuses"]) == (
            tune["runs"],
            tune["metric_points"],
            tune["statuses"],
        ), name
        assert f"  {name:<16}{got['runs']:>6}{got['metric_points']:>15}{got['params']:>8}" in text, name
        if name != "tensorboard":
            assert got["artifacts"] >= tune["artifacts"] > 0, name  # every checkpoint stored (files or versions)
    for command in (
        "mlflow ui --backend-store-uri",
        "tensorboard --logdir",
        "wandb sync",
        "aim up --repo",
        "comet upload",
    ):
        assert command in text, command

    # the same numbers, read independently with each tracker's own reader
    runs, points, statuses, files = _mlflow_stored(tmp_path)
    assert (runs, points) == (tune["runs"], tune["metric_points"])
    assert statuses == {"FINISHED": 2, "FAILED": 1} and files == table["trackers"]["mlflow"]["artifacts"]
    assert _tensorboard_points(tmp_path) == (tune["runs"], tune["metric_points"])
    wandb_runs = read_runs(str(tmp_path / "wandb"))
    assert len({r.run_id for r in wandb_runs}) == tune["runs"]
    assert sum(1 for r in wandb_runs for row in r.history for m in DEMO_METRICS if m in row) == tune["metric_points"]
    assert sorted(r.exit_code for r in wandb_runs) == [0, 0, 1]
    aim_runs = read_repo(str(tmp_path))
    assert len(aim_runs) == tune["runs"]
    assert sum(len(run.points(m)) for run in aim_runs.values() for m in DEMO_METRICS) == tune["metric_points"]
    comet = by_trial(tmp_path / "comet")
    assert len(comet) == tune["runs"]
    assert sum(len(e.series(m)) for e in comet.values() for m in DEMO_METRICS) == tune["metric_points"]
    assert sorted(e.other("status") for e in comet.values()) == ["FAILED", "FINISHED", "FINISHED"]
