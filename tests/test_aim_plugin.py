"""The Aim plugin: real Tune runs, read back with Aim's own reader (``aim.Repo``) in a fresh process, as a user
of ``aim up`` or of Aim's SDK would read them."""

from __future__ import annotations

import math
import os
import pickle
import shutil
from pathlib import Path

import pytest
from ray import tune

from tests.aim_reader import read_repo
from tests.aim_server import aim_command
from tests.step_checkpoints import first_step, step_checkpoint
from trackbridge import ExperimentInfo, LoggedFile, TrackBridgeCallback
from trackbridge.testing.conformance import StoredRuns, check_plugin
from trackbridge.testing.driver import ScriptedLog, drive, scripted_trial
from trackbridge.testing.script import make_trial
from trackbridge_aim import AimPlugin

AUTO_FIELDS = {"done", "time_this_iter_s", "time_since_restore", "training_iteration", "timestamp", "pid"}
STATUS_OF_AIM = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "unfinished"}


def trainable(config):
    step = first_step()
    for i in range(step, config["steps"] + 1):
        if config["x"] == 3 and i == 4:
            raise RuntimeError("trial x=3 fails at step 4 on purpose")
        tune.report(
            {
                "loss": config["x"] / i,
                "eval": {"acc": i / 10},
                "weights": [config["x"], i, i * 2],
                "phase": f"step {i}",
                "epoch": i // 2,
            },
            checkpoint=step_checkpoint(i) if i % 2 == 0 else None,
        )


def test_a_tune_run_one_run_per_trial_every_point_config_status_and_checkpoints(ray_session, workdir):
    callback = TrackBridgeCallback(plugins={"aim": {"save_checkpoints": True, "tags": ["smoke"]}})
    grid = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1, 2, 3]), "steps": 6, "opt": {"momentum": 0.9}},
        run_config=tune.RunConfig(name="aim_tune", storage_path=str(workdir / "ray"), callbacks=[callback], verbose=0),
    ).fit()
    experiment_dir = workdir / "ray" / "aim_tune"
    # the default repo: the experiment's own folder in Tune's storage (written in place, not a staging copy)
    assert (experiment_dir / ".aim").is_dir()
    runs = read_repo(str(experiment_dir))  # aim.Repo sees every run without `aim up`: each was indexed
    results = {r.metrics["trial_id"]: r for r in grid}
    assert set(runs) == set(results)
    for trial_id, result in results.items():
        run = runs[trial_id]
        x = result.config["x"]
        assert run.experiment == "aim_tune" and run.name.startswith("trainable_") and run.ended
        assert run.tags == ["smoke"]
        # the whole config, the constants of the param space included (Ray's callback logs only searched ones)
        assert run.params["hparams"] == {"x": x, "steps": 6, "opt": {"momentum": 0.9}}
        last = 3 if x == 3 else 6
        assert run.points("loss") == [(i, pytest.approx(x / i)) for i in range(1, last + 1)]
        assert [s for s, _ in run.points("eval/acc")] == list(range(1, last + 1))
        assert [s for s, _ in run.points("weights", kind="distribution")] == list(range(1, last + 1))
        assert run.points("phase", kind="text") == [(i, f"step {i}") for i in range(1, last + 1)]
        loss = next(s for s in run.series if s["name"] == "loss")
        assert loss["epochs"] == [i // 2 for i in range(1, last + 1)]  # a result's epoch is Aim's epoch
        assert not run.names() & AUTO_FIELDS, run.names()
        if x == 3:
            assert run.params["status"] == "FAILED" and "fails at step 4 on purpose" in run.params["error"]
        else:
            assert run.params["status"] == "FINISHED" and run.params["error"] is None
        checkpoints = sorted({a.split("/")[1] for a in run.artifacts if a.startswith("checkpoints/")})
        assert checkpoints == (["2"] if x == 3 else ["2", "4", "6"]), run.artifacts
        stored = experiment_dir / "aim-artifacts" / run.hash / "checkpoints" / "2" / "step"
        assert stored.read_text() == "2"
    [row] = callback.report["plugins"]
    assert row["failed"] == 0 and row["dropped"] == 0, row
    assert callback.report["plugins"][0]["plugin"] == "aim"


def flaky(config):
    step = first_step()
    for i in range(step, 7):
        if config["flaky"] and i == 4 and not os.path.exists(config["marker"]):
            Path(config["marker"]).write_text("failed once")
            raise RuntimeError("interrupted on purpose")
        tune.report({"loss": 1.0 / i}, checkpoint=step_checkpoint(i))


def test_a_restored_experiment_continues_each_trials_run(ray_session, workdir):
    path = workdir / "ray"
    aim_repo = workdir / "aim"
    callback = TrackBridgeCallback(plugins={"aim": {"repo": str(aim_repo)}})
    tune.Tuner(
        flaky,
        param_space={"flaky": tune.grid_search([True, False]), "marker": str(workdir / "marker")},
        run_config=tune.RunConfig(
            name="aim_restored",
            storage_path=str(path),
            callbacks=[callback],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    ).fit()
    first = read_repo(str(aim_repo))
    assert sorted(r.params["status"] for r in first.values()) == ["FAILED", "FINISHED"]

    tune.Tuner.restore(str(path / "aim_restored"), flaky, resume_errored=True).fit()
    runs = read_repo(str(aim_repo))  # read_repo asserts one run per trial
    assert set(runs) == set(first)
    for trial_id, run in runs.items():
        assert run.hash == first[trial_id].hash  # the same run continued
        assert run.points("loss") == [(i, pytest.approx(1.0 / i)) for i in range(1, 7)]
        assert run.params["status"] == "FINISHED" and run.params["error"] is None and run.ended


def test_options_are_validated_and_pickling_keeps_no_handles(tmp_path):
    with pytest.raises(TypeError, match="did you mean 'repo'"):
        AimPlugin(rpo="x")
    with pytest.raises(ValueError, match="positive"):
        AimPlugin(system_tracking_interval=0)
    with pytest.raises(ValueError, match="artifacts_uri"):
        AimPlugin(repo="aim://127.0.0.1:53800", save_checkpoints=True)
    with pytest.raises(ValueError, match="file:// or s3://"):
        AimPlugin(artifacts_uri="gs://bucket/x")
    plugin = AimPlugin(repo=str(tmp_path / "repo" / ".aim"), artifacts_uri=str(tmp_path / "art"))
    assert plugin.options.repo == str(tmp_path / "repo")  # Aim's rule: <dir>/.aim is the repo <dir>
    assert plugin.options.artifacts_uri == f"file://{tmp_path / 'art'}"
    assert plugin.view_command(None) == f"aim up --repo {tmp_path / 'repo'}"
    assert AimPlugin(repo="aim://127.0.0.1:53800").view_command(None) is None
    # Tune pickles the callback (with its plugins) while runs are open: only the options go into tuner.pkl
    plugin.trackbridge_setup()
    plugin.trackbridge_experiment_start(ExperimentInfo(name="pickled"))
    plugin.trackbridge_trial_start(make_trial("t1", experiment_name="pickled"), False, None)
    copy = pickle.loads(pickle.dumps(plugin))
    assert copy.options == plugin.options and copy.__dict__.keys() == AimPlugin().__dict__.keys()
    plugin.trackbridge_experiment_end(ExperimentInfo(name="pickled"))


def test_odd_values_each_skipped_alone_never_the_rest_of_the_result(tmp_path):
    """A NaN in an array (Aim cannot bin it), a NaN epoch, a key whose kind changes, a logged file named with
    ``..``: each is handled alone; every other value of the same result is stored."""
    (tmp_path / "notes.txt").write_text("hello")
    odd = scripted_trial(
        "odd",
        results=[
            {"loss": 1.0, "grads": [1.0, math.nan, 3.0], "epoch": math.nan, "flip": 1.0},
            {"loss": 0.5, "grads": [math.nan, math.inf], "epoch": 2, "flip": "now a string"},
        ],
        logs=[ScriptedLog(after=1, step=1, files=[LoggedFile(str(tmp_path / "notes.txt"), "../../escape.txt")])],
        experiment_name="odd",
    )
    plugin = AimPlugin(repo=str(tmp_path / "aim"))
    stats = drive(plugin, [odd], experiment=ExperimentInfo(name="odd"))
    assert stats.failed == 0, stats
    [run] = read_repo(str(tmp_path / "aim")).values()
    assert run.points("loss") == [(1, 1.0), (2, 0.5)]
    assert [s for s, _ in run.points("grads", kind="distribution")] == [1]  # step 2 held no finite number
    assert run.points("epoch") == [(1, pytest.approx(math.nan, nan_ok=True))]  # a NaN epoch stays a value
    loss = next(s for s in run.series if s["name"] == "loss")
    assert loss["epochs"] == [None, 2]
    assert run.points("flip") == [(1, 1.0)]
    assert run.artifacts == ["logged/escape.txt"]
    assert (tmp_path / "aim" / "aim-artifacts" / run.hash / "logged" / "escape.txt").read_text() == "hello"
    assert {"no-finite:grads", "kind:flip"} <= set(plugin.warn.counts)


def _aim_read_back(d: Path) -> StoredRuns:
    stored = StoredRuns()
    for trial_id, run in read_repo(str(d / "aim")).items():
        stored.runs_per_trial[trial_id] = 1
        # a branch that goes back is stored in a context of its own ({"branch": n}): its points follow
        branches = sorted(run.contexts("loss"), key=lambda c: c.get("branch", 0))
        stored.steps[trial_id] = [s for c in branches for s, _ in run.points("loss", c)]
        status = run.params.get("status")
        if status:
            stored.statuses[trial_id] = STATUS_OF_AIM[status]
        logged = run.points("batch_loss", {"source": "trial_log"})
        if logged:
            stored.logged_steps[trial_id] = [s for s, _ in logged]
    return stored


def test_aim_plugin_conforms(tmp_path):
    # Creating an Aim repo runs Aim's database migrations in a subprocess (seconds); the kit's scenarios each
    # get a copy of one empty repo instead of creating their own.
    from aim import Repo

    template = tmp_path / "empty_repo"
    Repo.from_path(str(template), init=True)

    def make_plugin(d: Path) -> AimPlugin:
        if not (d / "aim").exists():
            shutil.copytree(template, d / "aim")
        return AimPlugin(repo=str(d / "aim"))

    report = check_plugin(make_plugin, _aim_read_back, tmp_path / "kit")
    assert report.ok, "\n" + report.summary()


# --------------------------------------------------------------------------- a real `aim server`
def short(config):
    for i in range(1, 4):
        tune.report({"loss": config["x"] / i})


def test_runs_go_to_an_aim_server(ray_session, workdir, aim_server):
    import subprocess

    address, served = aim_server.address, aim_server.repo
    callback = TrackBridgeCallback(plugins={"aim": {"repo": address}})
    grid = tune.Tuner(
        short,
        param_space={"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(
            name="aim_remote", storage_path=str(workdir / "ray"), callbacks=[callback], verbose=0
        ),
    ).fit()
    assert callback.report["plugins"][0]["failed"] == 0
    assert not (workdir / "ray" / "aim_remote" / ".aim").exists()  # nothing written locally
    # The server's repo, indexed as `aim up` would on the server's machine, read with aim.Repo.
    subprocess.run([aim_command(), "storage", "--repo", str(served), "reindex", "-y"], check=True)
    runs = {tid: run for tid, run in read_repo(str(served)).items() if run.experiment == "aim_remote"}
    assert set(runs) == {r.metrics["trial_id"] for r in grid}
    for result in grid:
        run = runs[result.metrics["trial_id"]]
        x = result.config["x"]
        assert run.points("loss") == [(i, pytest.approx(x / i)) for i in range(1, 4)]
        assert run.params["status"] == "FINISHED" and run.experiment == "aim_remote" and run.ended
