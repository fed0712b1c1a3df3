"""The ``wandb`` plugin against the real W&B SDK in offline mode, read back from the ``run-<id>.wandb`` files.

Tune experiments run for real (the shared ``ray_session``); what W&B stored is parsed by ``tests/wandb_reader``
(the transaction log ``wandb sync`` would upload). Fast tests drive the plugin's hooks directly, without Ray.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from ray import tune

from tests.step_checkpoints import first_step
from tests.wandb_reader import artifact_manifest, read_runs, runs_by_id
from trackbridge import (
    CheckpointGone,
    CheckpointInfo,
    ExperimentInfo,
    PluginError,
    TrackBridgeCallback,
    TrialInfo,
    TrialStatus,
    flatten,
)
from trackbridge.testing import RecordingPlugin
from trackbridge_wandb import WandbPlugin
from trackbridge_wandb.options import PASSTHROUGH_INIT_KEYWORDS, WandbOptions, resolve_api_key

API_KEY = "trackbridge-test-key-0123456789abcdef0123"
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def wandb_home(tmp_path_factory):
    """Keep W&B's artifact staging, cache and config out of the home directory."""
    home = tmp_path_factory.mktemp("wandb_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_DATA_DIR", str(home / "data"))
        mp.setenv("WANDB_CACHE_DIR", str(home / "cache"))
        mp.setenv("WANDB_CONFIG_DIR", str(home / "config"))
        mp.setenv("WANDB_ARTIFACT_DIR", str(home / "artifacts"))
        mp.delenv("WANDB_API_KEY", raising=False)
        mp.delenv("WANDB_PROJECT", raising=False)
        yield home
    if TIMINGS:
        print("\nwandb plugin timings:", {k: round(v, 3) for k, v in TIMINGS.items()})


def _delivery(callback: TrackBridgeCallback) -> dict:
    [row] = [r for r in callback.report["plugins"] if r["plugin"] == "wandb"]
    return row


def _checkpoint_dir(step: int) -> tune.Checkpoint:
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "weights.txt"), "w") as f:
        f.write(f"weights at {step}")
    with open(os.path.join(d, "step"), "w") as f:
        f.write(str(step))
    return tune.Checkpoint.from_directory(d)


# --------------------------------------------------------------------------------------------------------------
# Done means: 4 trials x 50 results with checkpoints -> 4 offline runs, 200 rows at the right steps.

DONE_RESULTS = 50
DONE_CHECKPOINT_EVERY = 10


def done_trainable(config):
    for i in range(1, DONE_RESULTS + 1):
        checkpoint = _checkpoint_dir(i) if i % DONE_CHECKPOINT_EVERY == 0 else None
        tune.report(
            {"loss": config["lr"] * 100 / i, "acc": i / DONE_RESULTS, "eval": {"score": i * config["lr"]}},
            checkpoint=checkpoint,
        )


def test_four_trials_fifty_results_become_four_runs_with_exactly_the_reported_rows(ray_session, workdir):
    wandb_dir = workdir / "wandb_runs"
    recorder = RecordingPlugin()
    callback = TrackBridgeCallback(
        plugins=[
            ("wandb", {"mode": "offline", "dir": str(wandb_dir), "project": "p", "upload_checkpoints": True}),
            recorder,
        ]
    )
    lrs = [0.01, 0.02, 0.03, 0.04]
    tuner = tune.Tuner(
        done_trainable,
        param_space={"lr": tune.grid_search(lrs), "model": {"width": 8, "act": "relu"}, "seed": 7},
        run_config=tune.RunConfig(name="wb_done", storage_path=str(workdir / "ray"), callbacks=[callback], verbose=0),
    )
    started = time.perf_counter()
    grid = tuner.fit()
    TIMINGS["done_fit_seconds"] = time.perf_counter() - started
    delivery = _delivery(callback)
    TIMINGS["done_plugin_busy_seconds"] = delivery["busy_seconds"]
    TIMINGS["done_plugin_max_lag_seconds"] = delivery["max_lag_seconds"]
    assert delivery["failed"] == 0 and delivery["dropped"] == 0, delivery

    reported = recorder.by_trial()
    trial_ids = {r.metrics["trial_id"] for r in grid}
    assert set(reported) == trial_ids and len(trial_ids) == 4

    runs = runs_by_id(str(wandb_dir))
    assert set(runs) == trial_ids  # one run per trial, the run id is the trial id
    total_rows = 0
    for tid, [run] in runs.items():  # exactly one run file per trial
        start = reported[tid][0]
        config = start[4]
        assert run.name == f"done_trainable_{tid}"
        assert run.group == "wb_done" and run.project == "p"
        assert run.config == config == {"lr": config["lr"], "model/width": 8, "model/act": "relu", "seed": 7}
        assert run.exit_code == 0 and run.summary["tune/status"] == "completed"

        tune_rows = [(e[2], e[3]) for e in reported[tid] if e[0] == "result"]
        assert [step for step, _ in tune_rows] == list(range(1, DONE_RESULTS + 1))
        assert len(run.history) == len(tune_rows)
        for row, (step, metrics) in zip(run.history, tune_rows, strict=False):
            assert row["_step"] == row["training_iteration"] == step
            assert {k: row[k] for k in metrics} == metrics
            assert set(row) - set(metrics) == {"training_iteration", "_step", "_runtime", "_timestamp"}
        total_rows += len(run.history)
        assert ("*", "training_iteration") in run.metrics

        # one model artifact per checkpoint, named after the trial, with that step's metrics
        steps = list(range(DONE_CHECKPOINT_EVERY, DONE_RESULTS + 1, DONE_CHECKPOINT_EVERY))
        assert len(run.artifacts) == len(steps)
        for artifact, step in zip(run.artifacts, steps, strict=False):
            assert artifact.type == "model" and artifact.name == run.name
            assert set(artifact.aliases) == {"latest", f"step_{step}"}
            metadata = json.loads(artifact.metadata)
            assert metadata["training_iteration"] == step and metadata["trial_id"] == tid
            assert metadata["loss"] == pytest.approx(config["lr"] * 100 / step)
            files = artifact_manifest(artifact)
            assert set(files) == {"weights.txt", "step"}
            assert files["weights.txt"]["size"] == len(f"weights at {step}")
    assert total_rows == 4 * DONE_RESULTS


# --------------------------------------------------------------------------------------------------------------
# One experiment, several checks: a per-trial `wandb` sub-dict, every kind of value, a failing trial, a key.

FAILING_X = 2


def mixed_trainable(config):
    for i in range(1, 4):
        if config["x"] == FAILING_X and i == 3:
            raise RuntimeError("diverged on purpose")
        tune.report(
            {
                "loss": 1.0 / i,
                "weights": np.arange(10, dtype=np.float32) * i,
                "grads": [0.5, 1.5, float("nan")],
                "phase": f"epoch-{i}",
                "nothing": None,
                "bad": float("nan") if i == 2 else 1.0,
                "np_scalar": np.float64(i) * 2,
                "flag": i % 2 == 0,
            }
        )


@pytest.fixture(scope="module")
def mixed(ray_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("wb_mixed")
    wandb_dir = root / "wandb_runs"
    callback = TrackBridgeCallback(
        plugins={
            "wandb": {
                "mode": "offline",
                "dir": str(wandb_dir),
                "project": "p",
                "api_key": API_KEY,
                "tags": ["plugin-tag"],
            }
        }
    )
    overrides = {
        "name": "custom-name",
        "tags": ["a", "b"],
        "notes": "per-trial notes",
        "job_type": "sweep",
        "project": "other-project",
        "settings": {"console": "off"},
        "reinit": "nope",
    }
    tuner = tune.Tuner(
        mixed_trainable,
        param_space={
            "x": tune.grid_search([1, FAILING_X]),
            "opt": {"lr": 0.1},
            "wandb": tune.sample_from(lambda spec: overrides if spec.config["x"] == 1 else {}),
        },
        run_config=tune.RunConfig(name="wb_mixed", storage_path=str(root / "ray"), callbacks=[callback], verbose=0),
    )
    started = time.perf_counter()
    grid = tuner.fit()
    TIMINGS["mixed_fit_seconds"] = time.perf_counter() - started
    return {
        "root": root,
        "wandb_dir": wandb_dir,
        "callback": callback,
        "runs": runs_by_id(str(wandb_dir)),
        "grid": grid,
    }


def _run_for(mixed, x):
    [run] = [runs[0] for runs in mixed["runs"].values() if runs[0].config.get("x") == x]
    return run


def test_trial_wandb_subdict_overrides_init_and_is_not_logged_as_config(mixed):
    run = _run_for(mixed, 1)
    assert run.name == "custom-name"
    assert run.tags == ["a", "b"] and run.notes == "per-trial notes" and run.job_type == "sweep"
    assert run.project == "other-project"
    assert run.config == {"x": 1, "opt/lr": 0.1}  # no "wandb/..." keys
    other = _run_for(mixed, FAILING_X)
    assert other.project == "p" and other.tags == ["plugin-tag"] and other.group == "wb_mixed"
    assert other.config == {"x": FAILING_X, "opt/lr": 0.1}


def test_values_become_scalars_histograms_and_text(mixed):
    run = _run_for(mixed, 1)
    assert [r["_step"] for r in run.history] == [1, 2, 3]
    for i, row in enumerate(run.history, start=1):
        assert row["loss"] == pytest.approx(1.0 / i)
        assert row["weights/_type"] == "histogram" and sum(row["weights/values"]) == 10
        assert row["grads/_type"] == "histogram" and sum(row["grads/values"]) == 2  # NaN dropped
        assert row["phase"] == f"epoch-{i}"
        assert row["np_scalar"] == 2 * i
        assert row["flag"] is (i % 2 == 0)
        assert "nothing" not in row
    assert np.isnan(run.history[1]["bad"]) and run.history[0]["bad"] == 1.0
    assert run.summary["phase"] == "epoch-3"


def test_failing_trial_finishes_its_run_failed_with_the_error(mixed):
    run = _run_for(mixed, FAILING_X)
    assert [r["training_iteration"] for r in run.history] == [1, 2]
    assert run.exit_code == 1
    assert run.summary["tune/status"] == "failed"
    assert "diverged on purpose" in run.summary["tune/error"]
    ok = _run_for(mixed, 1)
    assert ok.exit_code == 0 and ok.summary["tune/status"] == "completed" and "tune/error" not in ok.summary
    assert _delivery(mixed["callback"])["failed"] == 0


def test_api_key_is_nowhere_on_disk(mixed):
    """Not in any run file, not in tuner.pkl, not in Tune's experiment state or the delivery report."""
    needle = API_KEY.encode()
    checked = 0
    for root in (mixed["wandb_dir"], mixed["root"] / "ray"):
        for path in Path(root).rglob("*"):
            if path.is_file() and not path.is_symlink():
                checked += 1
                assert needle not in path.read_bytes(), path
    assert (mixed["root"] / "ray" / "wb_mixed" / "tuner.pkl").exists()
    assert checked > 10


# --------------------------------------------------------------------------------------------------------------
# Restore: the driver is interrupted (SIGINT) mid-trial, Tuner.restore continues the same W&B run.


def interrupted_trainable(config):
    for i in range(first_step(), 7):
        if i == 4 and not os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            time.sleep(1.0)  # let the driver take in results and checkpoints 1-3 first
            os.kill(config["driver_pid"], signal.SIGINT)  # Ctrl+C in the driver: Tune saves and stops
            time.sleep(3)
        tune.report({"v": float(i)}, checkpoint=_checkpoint_dir(i))


def test_restored_experiment_continues_the_same_run_without_repeating_a_step(ray_session, workdir):
    wandb_dir = workdir / "wandb_runs"
    storage = workdir / "ray"
    options = {"mode": "offline", "dir": str(wandb_dir), "project": "p", "upload_checkpoints": True}
    tuner = tune.Tuner(
        interrupted_trainable,
        param_space={"marker": str(workdir / "marker"), "driver_pid": os.getpid()},
        run_config=tune.RunConfig(
            name="wb_restore",
            storage_path=str(storage),
            callbacks=[TrackBridgeCallback(plugins={"wandb": options})],
            verbose=0,
        ),
    )
    started = time.perf_counter()
    tuner.fit()
    TIMINGS["restore_first_fit_seconds"] = time.perf_counter() - started
    [(run_id, [first])] = runs_by_id(str(wandb_dir)).items()
    assert first.exit_code == 2 and first.summary["tune/status"] == "unfinished"
    first_steps = [r["_step"] for r in first.history]
    # normally [1, 2, 3]; on a loaded machine the Ctrl+C may overtake the driver's handling of step 3
    assert first_steps[:2] == [1, 2] and first_steps == list(range(1, len(first_steps) + 1))

    started = time.perf_counter()
    tune.Tuner.restore(str(storage / "wb_restore"), trainable=interrupted_trainable, resume_unfinished=True).fit()
    TIMINGS["restore_second_fit_seconds"] = time.perf_counter() - started

    # offline, a resumed run is a second run directory with the same id; `wandb sync` merges them in order
    runs = runs_by_id(str(wandb_dir))
    assert list(runs) == [run_id]
    first_again, second = runs[run_id]
    assert first_again.path == first.path
    assert Path(first.run_dir).name != Path(second.run_dir).name
    second_steps = [r["_step"] for r in second.history]
    assert first_steps + second_steps == [1, 2, 3, 4, 5, 6]  # every step exactly once, across both
    assert [r["v"] for r in second.history] == [float(s) for s in second_steps]
    assert [r["training_iteration"] for r in second.history] == second_steps
    assert second.exit_code == 0 and second.summary["tune/status"] == "completed"
    assert second.name == first.name and second.group == first.group == "wb_restore"
    assert second.config == first.config
    ckpt_aliases = [set(a.aliases) for a in first.artifacts + second.artifacts]
    assert ckpt_aliases == [{"latest", f"step_{s}"} for s in first_steps + second_steps]


# --------------------------------------------------------------------------------------------------------------
# Fast checks, driving the hooks directly (no Ray).


def _trial(tid: str = "t1", config: dict | None = None, experiment: str = "direct") -> TrialInfo:
    nested = dict(config or {"lr": 0.1})
    return TrialInfo(
        trial_id=tid,
        trial_name=f"trainable_{tid}",
        experiment_name=experiment,
        config=flatten(nested),
        nested_config=nested,
    )


def _plugin(tmp_path, **options) -> WandbPlugin:
    plugin = WandbPlugin(mode="offline", dir=str(tmp_path / "wb"), project="p", **options)
    plugin.trackbridge_setup()
    plugin.trackbridge_experiment_start(experiment=ExperimentInfo(name="direct"))
    return plugin


@pytest.mark.parametrize(
    "options, error",
    [
        ({"bogus": 1}, "unknown option 'bogus' for plugin 'wandb'"),
        ({"projcet": "p"}, "unknown option 'projcet' for plugin 'wandb'; did you mean 'project'?"),
        ({"id": "x"}, "'id' of plugin 'wandb' is not allowed: each trial's run id is its Tune trial id"),
        ({"reinit": True}, "'reinit' of plugin 'wandb' is not allowed"),
        ({"text": "loud"}, "'text' of plugin 'wandb' must be one of"),
        ({"tags": "one"}, "'tags' of plugin 'wandb' must be list"),
        ({"tags": ["a", 1]}, "'tags' of plugin 'wandb': must be a list of strings"),
        ({"upload_checkpoints": "yes"}, "'upload_checkpoints' of plugin 'wandb' must be bool"),
        ({"mode": "sometimes"}, "'mode' of plugin 'wandb': must be online, offline, disabled or shared"),
        ({"api_key": " "}, "'api_key' of plugin 'wandb': must be a non-empty string"),
        ({"settings": 3}, "'settings' of plugin 'wandb' must be dict or None"),
        ({"init_kwargs": {"resume": "must"}}, "'init_kwargs' of plugin 'wandb': may not set 'resume'"),
        ({"init_kwargs": {"mode": "sometimes"}}, "'init_kwargs' of plugin 'wandb': 'mode' must be online"),
    ],
)
def test_bad_options_fail_at_construction(options, error):
    with pytest.raises(PluginError, match=error.replace("?", r"\?")):
        TrackBridgeCallback(plugins={"wandb": options})


def test_options_are_declared_and_normalised(tmp_path):
    import wandb

    assert PASSTHROUGH_INIT_KEYWORDS <= set(WandbOptions.fields())
    assert all(WandbOptions.spec(k).doc for k in WandbOptions.fields())
    options = WandbPlugin(
        tags=("a", "b"),
        dir=tmp_path,
        project="p",
        force=False,
        settings=wandb.Settings(api_key=API_KEY, console="wrap"),
        init_kwargs={"dir": tmp_path / "x", "notes": "n"},
    ).options
    assert options.tags == ["a", "b"] and options.dir == str(tmp_path)
    assert options.settings == {"console": "wrap"} and options.api_key == API_KEY  # moved out of settings
    assert options.init == {
        "tags": ["a", "b"],
        "dir": str(tmp_path / "x"),
        "project": "p",
        "force": False,
        "notes": "n",
    }  # init_kwargs wins
    assert WandbPlugin(settings={"api_key": API_KEY}, api_key="mine").options.api_key == "mine"
    assert API_KEY not in repr(WandbPlugin(api_key=API_KEY))


def test_tool_hints_offline_options_and_view_command(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    demo = WandbPlugin.offline_options(str(tmp_path))
    assert demo == {"mode": "offline", "dir": str(tmp_path), "project": "trackbridge-demo"}
    assert WandbPlugin(**demo).view_command(None) == f"wandb sync {tmp_path}/wandb/offline-run-*"
    assert WandbPlugin(project="p").view_command(None) is None  # online: nothing to sync
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    assert WandbPlugin.offline_options(str(tmp_path)) == {"dir": str(tmp_path)}  # the environment wins
    monkeypatch.chdir(tmp_path)
    assert WandbPlugin().view_command(None) == f"wandb sync {tmp_path}/wandb/offline-run-*"
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "env"))
    assert WandbPlugin().view_command(None) == f"wandb sync {tmp_path}/env/wandb/offline-run-*"
    assert WandbPlugin(mode="online").view_command(None) is None


def test_api_key_is_never_pickled_and_found_again_after_unpickling(tmp_path, monkeypatch):
    key_file = tmp_path / "key"
    key_file.write_text(API_KEY + "\n")
    plugin = WandbPlugin(api_key=API_KEY, api_key_file=str(key_file), project="p")
    blob = pickle.dumps(plugin)
    assert API_KEY.encode() not in blob
    restored = pickle.loads(blob)
    assert restored.options.api_key is None and restored.options.init == {"project": "p"}
    assert restored.options.api_key_file == str(key_file)  # a reference to the key, not the key: kept
    assert resolve_api_key(restored.options) == API_KEY  # from the key file
    monkeypatch.setenv("WANDB_API_KEY", "from-env")
    assert resolve_api_key(WandbPlugin().options) == "from-env"
    assert resolve_api_key(plugin.options) == API_KEY  # the option wins over the environment
    # a plugin instance inside the callback, as Tune pickles it into tuner.pkl
    assert API_KEY.encode() not in pickle.dumps(TrackBridgeCallback(plugins=[WandbPlugin(api_key=API_KEY)]))


def test_config_updates_are_logged_only_with_log_config(tmp_path):
    for log_config in (True, False):
        plugin = _plugin(tmp_path / str(log_config), log_config=log_config)
        trial = _trial(config={"lr": 0.1, "wandb": {"tags": ["t"]}})
        plugin.trackbridge_trial_start(trial=trial, resumed=False, last_step=None)
        plugin.trackbridge_trial_result(trial=trial, step=1, metrics={"loss": 1.0})
        exploited = _trial(config={"lr": 0.5, "wandb": {"tags": ["t"]}})
        plugin.trackbridge_trial_start(trial=exploited, resumed=True, last_step=1)
        plugin.trackbridge_trial_config_update(trial=exploited, step=1, changes={"lr": 0.5, "wandb/tags": ["u"]})
        plugin.trackbridge_trial_result(trial=exploited, step=2, metrics={"loss": 0.5})
        plugin.trackbridge_trial_complete(trial=exploited, status=TrialStatus.COMPLETED, error=None)
        plugin.trackbridge_experiment_end(experiment=ExperimentInfo(name="direct"))
        [run] = read_runs(str(tmp_path / str(log_config) / "wb"))  # a paused/resumed trial stays one run
        assert run.config == {"lr": 0.5 if log_config else 0.1}
        # the exploit point is a row of its own either way, at training_iteration 1 (the step it continues from)
        rows = [(r["_step"], r["training_iteration"], r.get("loss"), r.get("trackbridge/exploit")) for r in run.history]
        assert rows == [(1, 1, 1.0, None), (2, 1, None, 1), (3, 2, 0.5, None)] and run.tags == ["t"]


@pytest.mark.parametrize("text", ["history", "summary", "html", "skip"])
def test_text_modes(tmp_path, text):
    plugin = _plugin(tmp_path, text=text)
    trial = _trial()
    plugin.trackbridge_trial_start(trial=trial, resumed=False, last_step=None)
    plugin.trackbridge_trial_result(trial=trial, step=1, metrics={"note": "<b>hi</b>", "loss": 1.0})
    plugin.trackbridge_trial_complete(trial=trial, status=TrialStatus.COMPLETED, error=None)
    [run] = read_runs(str(tmp_path / "wb"))
    [row] = run.history
    if text == "history":
        assert row["note"] == "<b>hi</b>"
    elif text == "summary":
        assert "note" not in row and run.summary["note"] == "<b>hi</b>"
    elif text == "html":
        assert row["note/_type"] == "html-file"
        html = Path(run.run_dir, "files", row["note/path"]).read_text()
        assert "&lt;b&gt;hi&lt;/b&gt;" in html
    else:
        assert "note" not in row and "note" not in run.summary
    assert row["loss"] == 1.0


def test_checkpoint_on_another_filesystem_and_a_vanished_one(tmp_path):
    import pyarrow.fs as pafs

    remote_root = tmp_path / "bucket"
    (remote_root / "exp" / "checkpoint_000000").mkdir(parents=True)
    (remote_root / "exp" / "checkpoint_000000" / "model.pt").write_bytes(b"\x00" * 2048)
    bucket = pafs.SubTreeFileSystem(str(remote_root), pafs.LocalFileSystem())  # not "local": gets downloaded
    assert bucket.type_name != "local"
    plugin = _plugin(tmp_path, upload_checkpoints=True)
    trial = _trial()
    plugin.trackbridge_trial_start(trial=trial, resumed=False, last_step=None)
    plugin.trackbridge_trial_result(trial=trial, step=1, metrics={"loss": float("inf")})
    started = time.perf_counter()
    plugin.trackbridge_trial_checkpoint(
        trial=trial,
        checkpoint=CheckpointInfo(
            path="exp/checkpoint_000000", step=1, metrics={"loss": float("inf")}, filesystem=bucket
        ),
    )
    TIMINGS["checkpoint_hook_seconds_2kB_remote"] = time.perf_counter() - started
    with pytest.raises(CheckpointGone, match="is gone"):
        plugin.trackbridge_trial_checkpoint(
            trial=trial, checkpoint=CheckpointInfo(path=str(tmp_path / "deleted"), step=1)
        )
    plugin.trackbridge_experiment_end(experiment=ExperimentInfo(name="direct"))  # finishes the open run
    [run] = read_runs(str(tmp_path / "wb"))
    assert run.exit_code == 2 and run.summary["tune/status"] == "unfinished"
    [artifact] = run.artifacts
    assert set(artifact_manifest(artifact)) == {"model.pt"}
    assert json.loads(artifact.metadata)["loss"] == "inf"


def test_steps_that_go_back_after_an_exploit_are_new_rows(tmp_path):
    """The plugin drops nothing (the core never sends a replay): after a PBT exploit from a checkpoint at step 1
    the steps 2 and 3 come again under the new config; each result is a new row at its training_iteration,
    and W&B's own _step keeps rising."""
    plugin = _plugin(tmp_path)
    trial = _trial(config={"lr": 0.1})
    plugin.trackbridge_trial_start(trial=trial, resumed=False, last_step=None)
    for step in (1, 2, 3):
        plugin.trackbridge_trial_result(trial=trial, step=step, metrics={"v": float(step)})
    exploited = _trial(config={"lr": 0.5})
    plugin.trackbridge_trial_start(trial=exploited, resumed=True, last_step=3)
    plugin.trackbridge_trial_config_update(trial=exploited, step=1, changes={"lr": 0.5})
    for step in (2, 3, 4):
        plugin.trackbridge_trial_result(trial=exploited, step=step, metrics={"v": 10.0 * step})
    plugin.trackbridge_trial_complete(trial=exploited, status=TrialStatus.COMPLETED, error=None)
    [run] = read_runs(str(tmp_path / "wb"))
    rows = [(r["_step"], r["training_iteration"], r.get("v"), r.get("trackbridge/exploit")) for r in run.history]
    assert rows == [
        (1, 1, 1.0, None),
        (2, 2, 2.0, None),
        (3, 3, 3.0, None),
        (4, 1, None, 1),  # the exploit point: it continues from step 1
        (5, 2, 20.0, None),
        (6, 3, 30.0, None),
        (7, 4, 40.0, None),
    ]
    assert ("*", "training_iteration") in run.metrics  # trackbridge/exploit is charted over training_iteration too


def test_wandb_is_not_imported_when_the_callback_is_built():
    import subprocess
    import sys

    code = (
        "import sys; import trackbridge_wandb; from trackbridge import TrackBridgeCallback; "
        "TrackBridgeCallback(plugins={'wandb': {'mode': 'offline'}}); "
        "print('wandb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_project_defaults_and_offline_runs_never_read_the_key(tmp_path, monkeypatch):
    """No project option: WANDB_PROJECT, else the experiment name. Offline, a missing key file is never read."""
    missing_key_file = str(tmp_path / "no-such-key")
    for env_project, expected in ((None, "direct"), ("from-env", "from-env")):
        if env_project:
            monkeypatch.setenv("WANDB_PROJECT", env_project)
        out = tmp_path / expected
        plugin = WandbPlugin(mode="offline", dir=str(out), api_key_file=missing_key_file)
        plugin.trackbridge_setup()
        plugin.trackbridge_experiment_start(experiment=ExperimentInfo(name="direct"))
        trial = _trial()
        plugin.trackbridge_trial_start(trial=trial, resumed=False, last_step=None)
        plugin.trackbridge_trial_complete(trial=trial, status=TrialStatus.COMPLETED, error=None)
        [run] = read_runs(str(out))
        assert run.project == expected and run.group == "direct" and run.exit_code == 0
    with pytest.raises(FileNotFoundError):
        resolve_api_key(WandbPlugin(api_key_file=missing_key_file).options)  # online, it would be read


def test_a_trial_whose_run_cannot_open_fails_alone_and_fast(tmp_path):
    from trackbridge.testing.driver import drive, scripted_trial

    plugin = WandbPlugin(mode="offline", dir=str(tmp_path / "wb"), project="p")
    broken = scripted_trial("bad", config={"wandb": {"mode": "nonsense"}}, results=[{"v": 1}, {"v": 2}])
    fine = scripted_trial("good", config={"lr": 0.1}, results=[{"v": 1}, {"v": 2}])
    started = time.perf_counter()
    stats = drive(plugin, [broken, fine])
    elapsed = time.perf_counter() - started
    # start, both results and the completion of the broken trial fail (fast: no wandb.init retry per result)
    assert stats.failed == 4 and stats.errors_by_hook == {
        "trackbridge_trial_start": 1,
        "trackbridge_trial_result": 2,
        "trackbridge_trial_complete": 1,
    }
    [run] = read_runs(str(tmp_path / "wb"))
    assert run.run_id == "good" and [r["v"] for r in run.history] == [1, 2] and run.exit_code == 0
    assert elapsed < 30


# --------------------------------------------------------------------------------------------------------------
# Values logged inside the trial (trackbridge_trial_log): same run, an axis of their own, W&B's _step rising.


def _in_trial_script(tmp_path: Path) -> list:
    """Results 1..2 of ``loss``; in-trial ``batch/loss`` at steps of their own (10, 11, 12, then 5: they may go
    down), a string, a list, a wandb.Image, an object W&B cannot store (twice), ``loss`` in-trial too, a file."""
    import wandb

    from trackbridge import LoggedFile
    from trackbridge.testing import ScriptedLog

    upload = tmp_path / "driver-copy-0001.txt"
    upload.write_text("logged inside the trial")
    image = wandb.Image(np.zeros((4, 4, 3), dtype=np.uint8))
    return [
        ScriptedLog(0, 10, {"batch/loss": 0.5, "note": "hello", "hist": [1.0, 2.0, 3.0], "img": image}),
        ScriptedLog(0, 11, {"batch/loss": 0.4, "thing": object()}),
        ScriptedLog(1, 12, {"batch/loss": 0.3, "loss": 7.0}, [LoggedFile(path=str(upload), name="notes.txt")]),
        ScriptedLog(2, 5, {"batch/loss": 0.9, "thing": object()}),
    ]


def test_in_trial_values_share_the_run_on_their_own_axis_and_files_become_an_artifact(tmp_path):
    from trackbridge.testing import drive, scripted_trial

    plugin = WandbPlugin(mode="offline", dir=str(tmp_path / "wb"), project="p")
    trial = scripted_trial("t", results=[{"loss": 1.0}, {"loss": 0.5}], logs=_in_trial_script(tmp_path))
    stats = drive(plugin, [trial])
    assert stats.failed == 0 and stats.dropped == 0

    [run] = read_runs(str(tmp_path / "wb"))
    steps = [row["_step"] for row in run.history]
    assert steps == sorted(set(steps)) and len(steps) == 6  # strictly rising, one row per call
    results = [row for row in run.history if "training_iteration" in row]
    assert [(r["training_iteration"], r["loss"]) for r in results] == [(1, 1.0), (2, 0.5)]
    assert all("trial_step" not in r for r in results)
    logged = [row for row in run.history if "trial_step" in row]
    assert all("training_iteration" not in r for r in logged)  # no step_sync from the results' axis
    assert [(r["trial_step"], r["batch/loss"]) for r in logged] == [(10, 0.5), (11, 0.4), (12, 0.3), (5, 0.9)]
    first = logged[0]
    assert first["note"] == "hello" and first["hist/_type"] == "histogram" and first["img/_type"] == "image-file"
    assert logged[2]["loss"] == 7.0  # stored, but "loss" keeps training_iteration as its x-axis
    assert ("trial_step", "") in run.metrics
    axes = dict(m for m in run.metrics if m[1])
    assert {k: axes.get(k) for k in ("batch/loss", "note", "hist", "img", "*")} == {
        "batch/loss": "trial_step",
        "note": "trial_step",
        "hist": "trial_step",
        "img": "trial_step",
        "*": "training_iteration",
    }
    assert "loss" not in axes  # a result metric is never re-declared

    [artifact] = run.artifacts
    assert (artifact.name, artifact.type, list(artifact.aliases)) == ("scripted_t-files", "trial-file", ["latest"])
    assert set(artifact_manifest(artifact)) == {"notes.txt"}
    assert json.loads(artifact.metadata) == {"trial_id": "t", "trial_step": 12, "files": ["notes.txt"]}
    # what W&B cannot store: warned once per key, every occurrence counted
    assert plugin.warn.counts == {"skip:thing": 2, "axis:loss": 1}


def test_without_in_trial_logs_step_equals_training_iteration_and_a_key_seen_first_in_trial_warns(tmp_path):
    from trackbridge.testing import ScriptedLog, drive, scripted_trial

    plugin = WandbPlugin(mode="offline", dir=str(tmp_path / "wb"), project="p", text="summary")
    plain = scripted_trial("plain", results=[{"v": 1.0}, {"v": 2.0}, {"v": 3.0}])
    mixed = scripted_trial(
        "mixed",
        results=[{"acc": 0.1}, {"acc": 0.2}],
        logs=[ScriptedLog(0, 1, {"acc": 0.05, "phase": "warmup"}), ScriptedLog(1, 2, {"acc": 0.15})],
    )
    assert drive(plugin, [plain, mixed]).failed == 0
    runs = {run.run_id: run for run in read_runs(str(tmp_path / "wb"))}
    assert [(r["_step"], r["training_iteration"]) for r in runs["plain"].history] == [(1, 1), (2, 2), (3, 3)]
    assert ("trial_step", "") not in runs["plain"].metrics  # declared only once a trial logs
    history = runs["mixed"].history
    # rows: log (_step 1), result 1 (_step max(2, 1) = 2), log (3), result 2 (max(4, 2) = 4)
    assert [(r["_step"], r.get("trial_step"), r.get("training_iteration")) for r in history] == [
        (1, 1, None),
        (2, None, 1),
        (3, 2, None),
        (4, None, 2),
    ]
    assert ("acc", "trial_step") in runs["mixed"].metrics  # seen in-trial first: its axis is trial_step
    assert runs["mixed"].summary["phase"] == "warmup"  # strings follow the text option
    assert plugin.warn.counts == {"axis:acc": 1}


class _ResumedRun:
    """What ``wandb.init(resume="allow")`` returns for a run with rows on the server (not testable offline):
    ``starting_step`` is W&B's next ``_step``, the summary holds the last values logged."""

    def __init__(self, starting_step: int, summary: dict) -> None:
        self.starting_step = starting_step
        self.summary = summary
        self.logged: list[tuple[dict, int]] = []
        self.defined: list[tuple] = []

    def define_metric(self, name, **kwargs):
        self.defined.append((name, kwargs.get("step_metric")))

    def log(self, row, step, commit):
        self.logged.append((row, step))


@pytest.mark.parametrize(
    "starting_step, summary, last_step, expected_last_result, expected_row",
    [
        (0, {}, None, None, 0),  # a new run
        (4, {"training_iteration": 3}, None, 3, 3),  # results only: as before in-trial logs
        (4, {}, None, 3, 3),  # no summary to tell: every row was a result
        (10, {"training_iteration": 3}, None, 3, 9),  # in-trial rows took _steps 4..9
        (10, {"training_iteration": 3}, 5, 5, 9),  # the core knows more results than W&B
    ],
)
def test_a_resumed_online_run_continues_its_row_counter(
    starting_step, summary, last_step, expected_last_result, expected_row
):
    from trackbridge.values import WarnOnce
    from trackbridge_wandb.trial_run import TrialRun

    run = _ResumedRun(starting_step, summary)
    state = TrialRun.opened(run, _trial(), last_step)
    assert (state.last_step, state.row) == (expected_last_result, expected_row)
    step = (expected_last_result or 0) + 1
    state.log_result(step, {"training_iteration": step, "loss": 1.0}, WarnOnce("wandb"))
    assert run.logged[-1][1] == max(expected_row + 1, step) > starting_step - 1  # never a _step W&B has
