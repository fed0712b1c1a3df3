"""The MLflow plugin against real MLflow back ends (SQLite and a real ``mlflow server``), read back with
``MlflowClient`` the way a user would check: runs per trial, params, metric histories, statuses, artifacts.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray import tune

from trackbridge import TrackBridgeCallback, TrialStatus
from trackbridge.events import ExperimentInfo, TrialInfo
from trackbridge.testing import drive, scripted_trial
from trackbridge_mlflow import MlflowPlugin
from trackbridge_mlflow.buffer import FlushError
from trackbridge_mlflow.limits import KeyMap, Limits, sanitize_key, truncate

# --------------------------------------------------------------------------- helpers


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(client, experiment_name: str) -> dict[str, Any]:
    """Trial runs of an MLflow experiment by their ``trial_name`` tag (asserting one run per trial)."""
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None, experiment_name
    runs = client.search_runs([experiment.experiment_id])
    trial_runs = [r for r in runs if r.data.tags.get("trackbridge.role") == "trial"]
    names = [r.data.tags["trial_name"] for r in trial_runs]
    assert len(names) == len(set(names)), f"more than one run for a trial: {sorted(names)}"
    return {r.data.tags["trial_name"]: r for r in trial_runs}


def _steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _report_row(callback: TrackBridgeCallback) -> dict[str, Any]:
    [row] = [r for r in callback.report["plugins"] if r["plugin"] == "mlflow"]
    return row


def _checkpoint(data: dict) -> tune.Checkpoint:
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "state.json"), "w") as f:
        json.dump(data, f)
    return tune.Checkpoint.from_directory(d)


def _load(checkpoint: tune.Checkpoint | None) -> dict:
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as d:
        with open(os.path.join(d, "state.json")) as f:
            return json.load(f)


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory) -> str:
    """One SQLite store for the Ray-free tests (a fresh store costs ~2 s to create); tests use their own
    experiment names."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow_shared') / 'mlflow.db'}"


# --------------------------------------------------------------------------- pure parts

NASTY_KEYS = [
    "acc@top1",
    "eval//loss",
    "/leading",
    "trailing/",
    "../up",
    "a/./b",
    "..hidden",
    ".",
    "..",
    "",
    "a:b c",
    "ünïcode",
    "tab\there",
    "x" * 300,
    "y/" * 200,
    "emoji😀",
    "semi;colon",
    "q'uote\"",
]


@pytest.mark.parametrize("key", NASTY_KEYS)
def test_sanitized_keys_pass_mlflows_own_validation(key):
    from mlflow.utils.validation import _validate_metric_name, _validate_param_name, _validate_tag_name

    name = sanitize_key(key)
    _validate_metric_name(name)
    _validate_param_name(name)
    _validate_tag_name(name)
    assert len(name) <= Limits.from_mlflow().key_length
    assert sanitize_key(key) == name  # deterministic
    assert sanitize_key(name) == name  # idempotent


def test_key_sanitising_rules_and_collisions():
    assert sanitize_key("eval/loss") == "eval/loss"
    assert sanitize_key("acc@top1") == "acc_top1"
    assert sanitize_key("eval//loss/") == "eval/loss"
    assert sanitize_key("../up") == "__/up"
    assert sanitize_key("..hidden") == "_.hidden"
    long_a, long_b = "k" * 300 + "a", "k" * 300 + "b"
    assert sanitize_key(long_a) != sanitize_key(long_b) and len(sanitize_key(long_a)) == 250
    keys = KeyMap()
    assert keys("a@b") == "a_b"
    other = keys("a#b")
    assert other != "a_b" and other.startswith("a_b_")
    assert keys("a#b") == other and keys("a@b") == "a_b"


def test_truncate_keeps_a_marker_within_the_limit():
    text = truncate("z" * 7000, 6000)
    assert len(text) == 6000 and text.endswith("...[truncated: 7000 chars]")
    assert truncate("short", 6000) == "short"


def test_options_are_validated_and_the_token_never_pickled():
    with pytest.raises(ValueError):
        MlflowPlugin(long_params="drop")
    with pytest.raises(TypeError):
        MlflowPlugin(save_artifact="yes")
    with pytest.raises(TypeError):
        MlflowPlugin(no_such_option=1)
    with pytest.raises(TypeError, match="did you mean 'tracking_uri'"):
        MlflowPlugin(trackinguri="sqlite:///x.db")
    for name in ("tracking_uri", "registry_uri", "experiment_name", "tracking_token", "artifact_location"):
        with pytest.raises(ValueError, match="must not be empty"):
            MlflowPlugin(**{name: " "})
    with pytest.raises(ValueError):
        MlflowPlugin(flush_retries=-1)
    with pytest.raises(TypeError):
        MlflowPlugin(flush_retries=True)
    assert MlflowPlugin(tags={"n": 1, 2: None}).options.tags == {"n": "1", "2": "None"}
    assert MlflowPlugin(tags=None).options.tags == {}
    plugin = MlflowPlugin(tracking_uri="http://user:pw@host:5000", tracking_token="s3cr3t-token", tags={"team": "a"})
    assert "s3cr3t" not in repr(plugin) and "pw" not in repr(plugin)
    blob = pickle.dumps(plugin)
    assert b"s3cr3t-token" not in blob
    clone = pickle.loads(blob)
    assert clone.options.tracking_token is None and clone.options.tags == {"team": "a"}
    # a named plugin in a callback: what Tune writes into tuner.pkl has no token either
    callback = TrackBridgeCallback(plugins={"mlflow": {"tracking_token": "s3cr3t-token"}})
    assert b"s3cr3t-token" not in pickle.dumps(callback)


def test_tool_hints_offline_store_and_view_command(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert MlflowPlugin.offline_options(str(tmp_path)) == {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}
    # REST stores open without connecting (a SQLite store opened here would keep ./mlruns as artifact root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert MlflowPlugin.offline_options(str(tmp_path)) == {}  # the user's own choice wins
    plugin = MlflowPlugin(tracking_uri="http://user:pw@127.0.0.1:9")
    assert plugin.view_command(None) == "mlflow ui --backend-store-uri 'http://***@127.0.0.1:9'"  # the option
    plugin.trackbridge_setup()
    assert plugin.view_command(None) == "mlflow ui --backend-store-uri 'http://***@127.0.0.1:9'"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert MlflowPlugin().view_command(None) is None  # nothing known before setup resolves MLflow's default
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    plugin = MlflowPlugin()
    plugin.trackbridge_setup()  # no option: $MLFLOW_TRACKING_URI
    assert plugin.view_command(None) == "mlflow ui --backend-store-uri http://127.0.0.1:9"


# --------------------------------------------------------------------------- driven without Ray, real store


def test_long_params_tag_and_artifact_modes(shared_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the SQLite store's default artifact root (./mlruns) lands here
    long_value = "v" * 9000
    for mode in ("tag", "artifact"):
        drive(
            MlflowPlugin(tracking_uri=shared_db, long_params=mode),
            [
                scripted_trial(
                    "t1",
                    config={"model": {"spec": long_value}, "lr": 0.1},
                    results=[{"loss": 1.0}],
                    experiment_name=f"long_{mode}",
                )
            ],
        )
        client = _client(shared_db)
        [run] = _runs(client, f"long_{mode}").values()
        param = run.data.params["model/spec"]
        assert len(param) == 6000 and param.startswith("v" * 100) and "truncated: 9000 chars" in param
        assert run.data.params["lr"] == "0.1"
        if mode == "tag":
            tag = run.data.tags["params/model/spec"]
            assert len(tag) == 8000 and "truncated: 9000 chars" in tag
        else:
            local = client.download_artifacts(run.info.run_id, "params/model/spec.txt", str(tmp_path))
            assert Path(local).read_text() == long_value


def test_config_changes_become_metrics_and_tags_not_param_errors(shared_db):
    # hooks called directly, all on this one thread, in the order the core's worker calls them
    plugin = MlflowPlugin(tracking_uri=shared_db)
    experiment = ExperimentInfo(name="config_change")
    config = {"lr": 0.1, "opt": "sgd", "layers": 2, "fixed": "same"}
    trial = TrialInfo("c1", "trial_c1", "config_change", config=config)
    plugin.trackbridge_setup()
    plugin.trackbridge_experiment_start(experiment=experiment)
    plugin.trackbridge_trial_start(trial=trial, resumed=False, last_step=None)
    for step in (1, 2):
        plugin.trackbridge_trial_result(trial=trial, step=step, metrics={"loss": 1.0 / step}, timestamp=1000.0 + step)
    plugin.trackbridge_flush()
    # PBT exploits: same trial comes back with a new config; the core sends start(resumed) + config_update
    new = TrialInfo("c1", "trial_c1", "config_change", config={**config, "lr": 0.05, "opt": "adam", "layers": 2})
    plugin.trackbridge_trial_start(trial=new, resumed=True, last_step=2)
    plugin.trackbridge_trial_config_update(trial=new, step=2, changes={"lr": 0.05, "opt": "adam"})
    for step in (3, 4):
        plugin.trackbridge_trial_result(trial=new, step=step, metrics={"loss": 1.0 / step}, timestamp=1000.0 + step)
    newer = TrialInfo("c1", "trial_c1", "config_change", config={**new.config, "lr": 0.025, "extra": True})
    plugin.trackbridge_trial_start(trial=newer, resumed=True, last_step=4)
    plugin.trackbridge_trial_config_update(trial=newer, step=4, changes={"lr": 0.025, "extra": True})
    plugin.trackbridge_trial_result(trial=newer, step=5, metrics={"loss": 0.2}, timestamp=1005.0)
    plugin.trackbridge_flush()
    plugin.trackbridge_trial_complete(trial=newer, status=TrialStatus.COMPLETED, error=None)
    plugin.trackbridge_experiment_end(experiment=experiment)

    client = _client(shared_db)
    [run] = _runs(client, "config_change").values()
    # params keep the values the trial started with; a key that appeared later is a new param
    assert run.data.params == {"lr": "0.1", "opt": "sgd", "layers": "2", "fixed": "same", "extra": "True"}
    lr = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "config/lr")]
    assert sorted(lr) == [(0, 0.1), (3, 0.05), (5, 0.025)]
    assert run.data.tags["config/opt"] == "adam"
    assert "config/layers" not in run.data.metrics and "config/fixed" not in run.data.tags
    assert _steps(client, run.info.run_id, "loss") == [1, 2, 3, 4, 5]
    assert run.info.status == "FINISHED"


def test_a_fresh_process_reopens_the_run_and_treats_a_new_config_as_a_change(shared_db):
    experiment = ExperimentInfo(name="reopen")
    trial = TrialInfo("r1", "trial_r1", "reopen", config={"lr": 0.1, "opt": "sgd"})
    first = MlflowPlugin(tracking_uri=shared_db)
    first.trackbridge_setup()
    first.trackbridge_experiment_start(experiment=experiment)
    first.trackbridge_trial_start(trial=trial, resumed=False, last_step=None)
    for step in (1, 2, 3):
        first.trackbridge_trial_result(trial=trial, step=step, metrics={"loss": float(step)}, timestamp=1000.0 + step)
    first.trackbridge_flush()
    first.trackbridge_trial_complete(trial=trial, status=TrialStatus.UNFINISHED, error=None)  # interrupted
    first.trackbridge_experiment_end(experiment=experiment)
    client = _client(shared_db)
    [run] = _runs(client, "reopen").values()
    assert run.info.status == "KILLED" and run.data.tags["trackbridge.status"] == "unfinished"

    # Tuner.restore: a new plugin (unpickled: no state), told that the experiment and the trial resume. The
    # core's delivery journal says step 3 is in the run, so it sends last_step=3 and never step 3 again (the
    # plugin itself drops nothing); the trial also comes back with a changed config.
    second = pickle.loads(pickle.dumps(first))
    restored = ExperimentInfo(name="reopen", resumed=True)
    changed = TrialInfo("r1", "trial_r1", "reopen", config={"lr": 0.2, "opt": "adam"})
    second.trackbridge_setup()
    second.trackbridge_experiment_start(experiment=restored)
    second.trackbridge_trial_start(trial=changed, resumed=True, last_step=3)
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    second.trackbridge_trial_result(trial=changed, step=4, metrics={"loss": 40.0}, timestamp=2004.0)
    second.trackbridge_flush()
    second.trackbridge_trial_complete(trial=changed, status=TrialStatus.COMPLETED, error=None)
    second.trackbridge_experiment_end(experiment=restored)

    [again] = _runs(client, "reopen").values()
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss")}
    assert history == {1: 1.0, 2: 2.0, 3: 3.0, 4: 40.0}
    assert again.data.params == {"lr": "0.1", "opt": "sgd"}
    assert again.data.metrics["config/lr"] == 0.2 and again.data.tags["config/opt"] == "adam"


def test_a_pbt_exploit_is_marked_and_the_steps_after_it_come_again(shared_db):
    """A branch: the trial continues from a donor checkpoint at step 2 after it had reached step 4. Its new
    results 3, 4, 5 are logged at their steps again (MLflow keeps both values of 3 and 4), the exploit is the
    metric trackbridge/exploit = 1 at step 2, and the new lr the metric config/lr from step 3 on."""
    plugin = MlflowPlugin(tracking_uri=shared_db)
    experiment = ExperimentInfo(name="exploit")
    trial = TrialInfo("x1", "trial_x1", "exploit", config={"lr": 0.1})
    plugin.trackbridge_setup()
    plugin.trackbridge_experiment_start(experiment=experiment)
    plugin.trackbridge_trial_start(trial=trial, resumed=False, last_step=None)
    for step in (1, 2, 3, 4):
        plugin.trackbridge_trial_result(trial=trial, step=step, metrics={"loss": float(step)}, timestamp=1000.0 + step)
    exploited = TrialInfo("x1", "trial_x1", "exploit", config={"lr": 0.5})
    plugin.trackbridge_trial_start(trial=exploited, resumed=True, last_step=4)
    plugin.trackbridge_trial_config_update(trial=exploited, step=2, changes={"lr": 0.5})
    for step in (3, 4, 5):
        plugin.trackbridge_trial_result(
            trial=exploited, step=step, metrics={"loss": 10.0 * step}, timestamp=2000.0 + step
        )
    plugin.trackbridge_flush()
    plugin.trackbridge_trial_complete(trial=exploited, status=TrialStatus.COMPLETED, error=None)
    plugin.trackbridge_experiment_end(experiment=experiment)

    client = _client(shared_db)
    [run] = _runs(client, "exploit").values()
    loss = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss"))
    assert loss == [(1, 1.0), (2, 2.0), (3, 3.0), (3, 30.0), (4, 4.0), (4, 40.0), (5, 50.0)]
    marks = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "trackbridge/exploit")]
    assert marks == [(2, 1.0)]
    lr = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "config/lr"))
    assert lr == [(0, 0.1), (3, 0.5)]  # the new value from the first step that uses it, not after step 4
    assert run.data.params == {"lr": "0.1"}


def test_a_failing_batch_keeps_other_runs_data_and_is_dropped_after_bounded_retries(shared_db):
    plugin = MlflowPlugin(tracking_uri=shared_db, flush_retries=1)
    experiment = ExperimentInfo(name="bad_batch")
    good = TrialInfo("g", "trial_good", "bad_batch")
    bad = TrialInfo("b", "trial_bad", "bad_batch")
    plugin.trackbridge_setup()
    plugin.trackbridge_experiment_start(experiment=experiment)
    for t in (good, bad):
        plugin.trackbridge_trial_start(trial=t, resumed=False, last_step=None)
    client = _client(shared_db)
    runs = _runs(client, "bad_batch")
    client.delete_run(runs["trial_bad"].info.run_id)  # from now on MLflow refuses to log to it
    for step in (1, 2):
        for t in (good, bad):
            plugin.trackbridge_trial_result(trial=t, step=step, metrics={"loss": float(step)}, timestamp=1000.0 + step)
        with pytest.raises(FlushError) as info:
            plugin.trackbridge_flush()
        assert "trial_bad" in str(info.value) and "trial_good" not in str(info.value)
        if step == 1:
            assert "keeping 1 metric points" in str(info.value)
        else:  # second failure with flush_retries=1: given up and counted
            assert "dropped 2 metric points" in str(info.value)
    assert plugin._buffer.pending() == 0 and plugin._buffer.dropped == 2
    assert _steps(client, runs["trial_good"].info.run_id, "loss") == [1, 2]
    plugin.trackbridge_trial_complete(trial=good, status=TrialStatus.COMPLETED, error=None)
    with pytest.raises(Exception, match="active"):  # errors reach the core (which logs and counts them)
        plugin.trackbridge_trial_complete(trial=bad, status=TrialStatus.COMPLETED, error=None)
    with pytest.raises(Exception, match="active"):  # a last attempt to end it, still reported
        plugin.trackbridge_experiment_end(experiment=experiment)
    assert client.get_run(runs["trial_good"].info.run_id).info.status == "FINISHED"


def test_deleted_experiment_with_the_same_name_is_restored(shared_db, caplog):
    client = _client(shared_db)
    old = client.create_experiment("was_deleted")
    client.delete_experiment(old)
    with caplog.at_level(logging.WARNING, logger="trackbridge"):
        stats = drive(
            MlflowPlugin(tracking_uri=shared_db),
            [scripted_trial("d1", results=[{"loss": 1.0}], experiment_name="was_deleted")],
        )
    assert stats.failed == 0
    experiment = client.get_experiment_by_name("was_deleted")
    assert experiment.experiment_id == old and experiment.lifecycle_stage == "active"
    assert len(_runs(client, "was_deleted")) == 1
    assert any("was deleted; restoring it" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- real Tune runs on SQLite

STEPS = 200


def steady(config):
    for i in range(1, STEPS + 1):
        tune.report({"loss": config["x"] / i, "acc": i / STEPS})


def test_done_means_4_trials_x_200_results_complete_histories(ray_session, workdir):
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    callback = TrackBridgeCallback(plugins={"mlflow": {"tracking_uri": uri}})
    tune.Tuner(
        steady,
        param_space={"x": tune.grid_search([1, 2, 3, 4])},
        run_config=tune.RunConfig(
            name="done_means", storage_path=str(workdir / "ray"), callbacks=[callback], verbose=0
        ),
    ).fit()
    client = _client(uri)
    runs = _runs(client, "done_means")
    assert len(runs) == 4
    for name, run in runs.items():
        assert run.info.status == "FINISHED", name
        assert run.info.run_name == name and run.data.tags["trial_id"] in name
        assert run.data.tags["mlflow.user"] and run.data.tags["mlflow.source.type"]
        x = int(run.data.params["x"])
        for key in ("loss", "acc"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(1, STEPS + 1)), (name, key)
        assert run.data.metrics["loss"] == pytest.approx(x / STEPS)
    row = _report_row(callback)
    assert row["failed"] == 0 and row["dropped"] == 0


def mixed(config):
    for i in range(1, 5):
        if config["fail"] and i == 3:
            raise RuntimeError("diverged on purpose")
        tune.report(
            {
                "loss": 1.0 / i,
                "acc@top1": i,
                "eval//x": i,
                "../up": i,
                "a:b c": i,
                "note": "text",
                "nan": float("nan"),
                "inf": float("inf"),
                "flag": i % 2 == 0,
                "np": np.float32(i),
                "hist": [1.0, 2.0],
            }
        )


def test_failing_trial_odd_names_odd_values_and_a_long_config_value(ray_session, workdir, caplog):
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    callback = TrackBridgeCallback(plugins={"mlflow": {"tracking_uri": uri, "tags": {"team": "vision"}}})
    with caplog.at_level(logging.WARNING, logger="trackbridge"):
        tune.Tuner(
            mixed,
            param_space={"fail": tune.grid_search([False, True]), "spec": "s" * 10_000, "opt": {"lr@x": 0.1}},
            run_config=tune.RunConfig(name="mixed", storage_path=str(workdir / "ray"), callbacks=[callback], verbose=0),
        ).fit()
    client = _client(uri)
    runs = _runs(client, "mixed")
    assert len(runs) == 2
    by_fail = {run.data.params["fail"]: run for run in runs.values()}
    ok, failed = by_fail["False"], by_fail["True"]
    assert ok.info.status == "FINISHED" and ok.data.tags["trackbridge.status"] == "completed"
    assert failed.info.status == "FAILED" and "diverged on purpose" in failed.data.tags["error"]
    assert len(failed.data.tags["error"]) <= 8000
    assert _steps(client, failed.info.run_id, "loss") == [1, 2]
    rid = ok.info.run_id
    assert _steps(client, rid, "loss") == [1, 2, 3, 4]
    for name in ("acc_top1", "eval/x", "__/up", "a:b c", "np"):
        assert _steps(client, rid, name) == [1, 2, 3, 4], name
    assert "note" not in ok.data.metrics and "hist" not in ok.data.metrics
    assert [m.value for m in client.get_metric_history(rid, "flag")] == [0.0, 1.0, 0.0, 1.0]
    assert all(np.isnan(m.value) for m in client.get_metric_history(rid, "nan"))
    assert all(m.value >= 1.7e308 for m in client.get_metric_history(rid, "inf"))  # how MLflow stores +inf
    spec = ok.data.params["spec"]
    assert len(spec) == 6000 and spec.endswith("...[truncated: 10000 chars]")
    assert ok.data.params["opt/lr_x"] == "0.1" and ok.data.tags["team"] == "vision"
    # one warning per skipped key for the whole run, not one per result or per trial
    note_warnings = [r for r in caplog.records if "'note'" in r.getMessage()]
    assert len(note_warnings) == 1
    row = _report_row(callback)
    assert row["failed"] == 0 and row["dropped"] == 0


# --------------------------------------------------------------------------- PBT: config changes mid-trial


def pbt_trainable(config):
    state = _load(tune.get_checkpoint())
    step, score = state.get("step", 0), state.get("score", 0.0)
    while step < 8:
        step += 1
        score += config["lr"] * (2 if config["optimizer"] == "adam" else 1)
        tune.report({"score": score}, checkpoint=_checkpoint({"step": step, "score": score}))


def test_pbt_perturbations_do_not_break_params(ray_session, workdir):
    random.seed(7)  # PBT's explore draws from Python's random module on the driver
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    callback = TrackBridgeCallback(plugins={"mlflow": {"tracking_uri": uri}})
    pbt = tune.schedulers.PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=2,
        # no starting value among the choices: every resample is a real change of lr
        hyperparam_mutations={"lr": [0.02, 0.04], "optimizer": ["sgd", "adam"]},
        quantile_fraction=0.5,
        resample_probability=1.0,  # the explored trial gets a fresh sample of both: lr and optimizer change
        synch=True,  # both trials reach each perturbation point before PBT decides: always an exploit
    )
    grid = tune.Tuner(
        pbt_trainable,
        param_space={"lr": tune.grid_search([0.01, 0.08]), "optimizer": "sgd"},
        tune_config=tune.TuneConfig(scheduler=pbt, metric="score", mode="max", reuse_actors=True),
        run_config=tune.RunConfig(
            name="pbt",
            storage_path=str(workdir / "ray"),
            callbacks=[callback],
            verbose=0,
            stop={"training_iteration": 8},
        ),
    ).fit()
    client = _client(uri)
    runs = _runs(client, "pbt")
    assert len(runs) == 2
    row = _report_row(callback)
    assert row["failed"] == 0 and row["dropped"] == 0, row
    assert {r.data.params["lr"] for r in runs.values()} == {"0.01", "0.08"}  # params: the starting values
    perturbed = 0
    for result in grid:
        run = next(r for r in runs.values() if r.data.tags["trial_id"] == result.metrics["trial_id"])
        steps = _steps(client, run.info.run_id, "score")
        assert len(steps) == len(set(steps)) and steps[-1] == 8, steps
        assert run.info.status == "FINISHED"
        # the value in effect at the end: the latest config/lr point, else the param
        lr = client.get_metric_history(run.info.run_id, "config/lr")
        if lr:
            perturbed += 1
            first = min(lr, key=lambda m: m.step)  # the starting value at step 0, then each change
            assert first.step == 0 and first.value == float(run.data.params["lr"])
            assert max(lr, key=lambda m: m.step).value == result.config["lr"]
        else:
            assert float(run.data.params["lr"]) == result.config["lr"]
        optimizer = run.data.tags.get("config/optimizer", run.data.params["optimizer"])
        assert optimizer == result.config["optimizer"]
    assert perturbed >= 1, "PBT changed no lr; the test would prove nothing"


# --------------------------------------------------------------------------- restore after an interruption


def flaky(config):
    state = _load(tune.get_checkpoint())
    start = state.get("step", 0) + 1
    for i in range(start, 7):
        if config["flaky"] and i == 4 and not os.path.exists(config["marker"]):
            Path(config["marker"]).write_text("failed once")
            raise RuntimeError("interrupted on purpose")
        tune.report({"loss": 1.0 / i}, checkpoint=_checkpoint({"step": i}))


def test_restored_experiment_continues_each_trials_run(ray_session, workdir):
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    path = workdir / "ray"
    callback = TrackBridgeCallback(plugins={"mlflow": {"tracking_uri": uri, "parent_run": True}})
    tune.Tuner(
        flaky,
        param_space={"flaky": tune.grid_search([True, False]), "marker": str(workdir / "marker")},
        run_config=tune.RunConfig(
            name="restored",
            storage_path=str(path),
            callbacks=[callback],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    ).fit()
    client = _client(uri)
    first = _runs(client, "restored")
    statuses = {r.data.params["flaky"]: r.info.status for r in first.values()}
    assert statuses == {"True": "FAILED", "False": "FINISHED"}

    tune.Tuner.restore(str(path / "restored"), flaky, resume_errored=True).fit()
    runs = _runs(client, "restored")
    assert set(runs) == set(first)  # the same runs continued; none added
    for name, run in runs.items():
        assert run.info.run_id == first[name].info.run_id
        assert run.info.status == "FINISHED", name
        assert _steps(client, run.info.run_id, "loss") == [1, 2, 3, 4, 5, 6], name  # no gaps, no duplicates
        assert "error" not in run.data.tags and run.data.tags["trackbridge.status"] == "completed"
    experiment = client.get_experiment_by_name("restored")
    parents = [
        r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("trackbridge.role") == "parent"
    ]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in runs.values()} == {parents[0].info.run_id}


# --------------------------------------------------------------------------- a real mlflow server


def with_checkpoints(config):
    for i in range(1, 4):
        tune.report({"loss": config["x"] / i}, checkpoint=_checkpoint({"step": i, "x": config["x"]}))


def test_real_server_parent_run_checkpoint_artifacts_and_long_param_artifact(ray_session, workdir, mlflow_server):
    long_value = "L" * 7000
    callback = TrackBridgeCallback(
        plugins={
            "mlflow": {
                "tracking_uri": mlflow_server.url,
                "experiment_name": "server_e2e",
                "parent_run": True,
                "save_artifact": True,
                "long_params": "artifact",
                "tracking_token": "tok-not-for-logs",
            }
        }
    )
    tune.Tuner(
        with_checkpoints,
        param_space={"x": tune.grid_search([1, 2]), "spec": long_value},
        run_config=tune.RunConfig(
            name="server_tune", storage_path=str(workdir / "ray"), callbacks=[callback], verbose=0
        ),
    ).fit()
    assert os.environ.get("MLFLOW_TRACKING_TOKEN") != "tok-not-for-logs"  # restored after the run
    client = _client(mlflow_server.url)
    runs = _runs(client, "server_e2e")
    assert len(runs) == 2
    experiment = client.get_experiment_by_name("server_e2e")
    all_runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in all_runs if r.data.tags.get("trackbridge.role") == "parent"]
    assert parent.info.status == "FINISHED" and parent.info.run_name == "server_tune"
    for name, run in runs.items():
        rid = run.info.run_id
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["experiment_name"] == "server_tune"
        assert _steps(client, rid, "loss") == [1, 2, 3]
        assert [a.path for a in client.list_artifacts(rid, "checkpoints")] == [
            "checkpoints/1",
            "checkpoints/2",
            "checkpoints/3",
        ]
        local = client.download_artifacts(rid, "checkpoints/2/state.json", str(workdir))
        assert json.loads(Path(local).read_text())["step"] == 2
        assert "full value in artifact params/spec.txt" in run.data.params["spec"]
        full = client.download_artifacts(rid, "params/spec.txt", str(workdir / name))
        assert Path(full).read_text() == long_value
        everything = json.dumps([run.data.params, run.data.tags])
        assert "tok-not-for-logs" not in everything
    assert b"tok-not-for-logs" not in (workdir / "ray" / "server_tune" / "tuner.pkl").read_bytes()
    row = _report_row(callback)
    assert row["failed"] == 0 and row["dropped"] == 0


# --------------------------------------------------------------------------- values logged inside the trial


def test_in_trial_numbers_are_metrics_at_their_own_steps_and_files_artifacts_under_logged(tmp_path):
    from trackbridge import LoggedFile
    from trackbridge.testing import ScriptedLog

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "copies" / "tree").mkdir(parents=True)
    renamed = tmp_path / "copies" / "driver-copy-0001.txt"
    renamed.write_text("renamed")
    same = tmp_path / "copies" / "same.txt"
    same.write_text("same name")
    (tmp_path / "copies" / "tree" / "leaf.txt").write_text("in a directory")
    files = [
        LoggedFile(path=str(renamed), name="notes.txt"),
        LoggedFile(path=str(same), name="same.txt"),
        LoggedFile(path=str(renamed), name="plots/../../evil.txt"),  # ".." dropped: never outside logged/
        LoggedFile(path=str(tmp_path / "copies" / "tree"), name="tree"),
    ]
    logs = [
        ScriptedLog(0, 10, {"batch/loss": 0.5, "note": "hello", "hist": [1.0, 2.0], "big": np.float32(2.5)}),
        ScriptedLog(0, 11, {"batch/loss": 0.4, "thing": object(), "odd key:@": 1.0}),
        ScriptedLog(1, 12, {"batch/loss": 0.3}, files),
        ScriptedLog(2, 5, {"batch/loss": 0.9, "thing": object(), "note": "again"}),
    ]
    plugin = MlflowPlugin(tracking_uri=uri)
    stats = drive(plugin, [scripted_trial("t", results=[{"loss": 1.0}, {"loss": 0.5}], logs=logs)])
    assert stats.failed == 0 and stats.dropped == 0

    client = _client(uri)
    run = _runs(client, "scripted")["scripted_t"]
    run_id = run.info.run_id
    history = client.get_metric_history(run_id, "batch/loss")
    assert sorted((m.step, m.value) for m in history) == [(5, 0.9), (10, 0.5), (11, 0.4), (12, 0.3)]
    assert _steps(client, run_id, "loss") == [1, 2]  # the results, at training_iteration
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "big")] == [(10, 2.5)]
    assert set(run.data.metrics) == {"loss", "batch/loss", "big", "odd key:_"}  # sanitised like results

    def listing(path: str) -> list[str]:
        return sorted(a.path for a in client.list_artifacts(run_id, path))

    assert listing("logged") == ["logged/notes.txt", "logged/plots", "logged/same.txt", "logged/tree"]
    assert listing("logged/tree") == ["logged/tree/leaf.txt"]
    assert listing("logged/plots") == ["logged/plots/evil.txt"]
    local = client.download_artifacts(run_id, "logged", str(tmp_path / "back"))
    assert (Path(local) / "notes.txt").read_text() == "renamed"
    assert (Path(local) / "tree" / "leaf.txt").read_text() == "in a directory"
    # what MLflow cannot store as a metric: warned once per key, every occurrence counted
    assert plugin.warn.counts == {"value:note": 2, "value:hist": 1, "value:thing": 2, "name:odd key:@": 1}


def test_logged_file_names_stay_under_logged():
    from trackbridge import LoggedFile
    from trackbridge_mlflow.logged import artifact_place

    assert artifact_place(LoggedFile("/x/a.txt", "a.txt")) == ("logged", "a.txt")
    assert artifact_place(LoggedFile("/x/a.txt", "plots/b.png")) == ("logged/plots", "b.png")
    assert artifact_place(LoggedFile("/x/a.txt", "/etc/../passwd")) == ("logged/etc", "passwd")
    assert artifact_place(LoggedFile("/x/a.txt", "..")) == ("logged", "a.txt")
    assert artifact_place(LoggedFile("/x/dir/", "")) == ("logged", "dir")


# --------------------------------------------------------------------------- a reopened run's points are not stored twice


def _held_metrics(step: int, offset: float = 0.0) -> dict[str, float]:
    """One result: a plain key and one MLflow stores under another name (``acc@top1`` -> ``acc_top1``)."""
    return {"loss": offset + 1.0 / step, "acc@top1": offset + step / 10}


def _first_process(uri: str, experiment: ExperimentInfo, trial: TrialInfo, steps: range) -> str:
    """A plugin object (one process) logging ``steps`` of ``trial`` (results and an in-trial value) and
    completing it; returns the trial's run id."""
    plugin = MlflowPlugin(tracking_uri=uri)
    plugin.trackbridge_setup()
    plugin.trackbridge_experiment_start(experiment=experiment)
    plugin.trackbridge_trial_start(trial=trial, resumed=False, last_step=None)
    for step in steps:
        plugin.trackbridge_trial_result(trial=trial, step=step, metrics=_held_metrics(step), timestamp=1000.0 + step)
        plugin.trackbridge_trial_log(trial=trial, step=step, values={"batch/loss": 1.0}, files=[], timestamp=1000.0)
    plugin.trackbridge_flush()
    plugin.trackbridge_trial_complete(trial=trial, status=TrialStatus.COMPLETED, error=None)
    plugin.trackbridge_experiment_end(experiment=experiment)
    [run] = _runs(_client(uri), experiment.name).values()
    return run.info.run_id


def _reopening_process(uri: str, experiment: ExperimentInfo, trial: TrialInfo) -> MlflowPlugin:
    """A second plugin object (a new process) on the same store, the experiment and the trial resumed, with
    nothing known about the trial's last step (no delivery journal: ``replay --only-missing``, or lost)."""
    plugin = MlflowPlugin(tracking_uri=uri)
    plugin.trackbridge_setup()
    plugin.trackbridge_experiment_start(experiment=ExperimentInfo(name=experiment.name, resumed=True))
    plugin.trackbridge_trial_start(trial=trial, resumed=True, last_step=None)
    return plugin


def _send(plugin: MlflowPlugin, trial: TrialInfo, steps: range, offset: float) -> None:
    for step in steps:
        metrics = _held_metrics(step, offset)
        plugin.trackbridge_trial_result(trial=trial, step=step, metrics=metrics, timestamp=2000.0 + step)
        plugin.trackbridge_trial_log(trial=trial, step=step, values={"batch/loss": offset}, files=[], timestamp=2000.0)


def _finish(plugin: MlflowPlugin, trial: TrialInfo, experiment: ExperimentInfo) -> None:
    plugin.trackbridge_flush()
    plugin.trackbridge_trial_complete(trial=trial, status=TrialStatus.COMPLETED, error=None)
    plugin.trackbridge_experiment_end(experiment=experiment)


def test_a_reopened_run_does_not_store_the_steps_it_already_holds_again(shared_db, caplog):
    experiment = ExperimentInfo(name="held_steps")
    trial = TrialInfo("h1", "trial_h1", "held_steps", config={"lr": 0.1})
    run_id = _first_process(shared_db, experiment, trial, range(1, 6))

    with caplog.at_level(logging.INFO, logger="trackbridge"):
        second = _reopening_process(shared_db, experiment, trial)
    _send(second, trial, range(1, 9), offset=100.0)  # steps 1..5 again (other values), then 6..8 new
    _finish(second, trial, experiment)

    client = _client(shared_db)
    [run] = _runs(client, "held_steps").values()  # still one run for the trial
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert set(run.data.metrics) == {"loss", "acc_top1", "batch/loss"}
    for key in run.data.metrics:
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == list(range(1, 9)), key  # each step once
        kept_old = [m for m in history if m.step <= 5]
        assert all(m.value < 100.0 for m in kept_old), key  # the points the run held, not the re-sent ones
    assert second.held_skipped == 3 * 5  # three metrics, steps 1..5: results and in-trial values alike
    [line] = [r.getMessage() for r in caplog.records if "already holds" in r.getMessage()]
    assert f"run {run_id}, which already holds 5 steps (15 points of 3 metrics)" in line
    assert "trial_h1" in line and "not logged again" in line


def test_after_a_config_update_a_reopened_run_logs_the_steps_that_come_again(shared_db):
    """A PBT exploit after the reopening: the trial continues from step 3, so its steps 4, 5, 6 are new
    points (the branch), although the run holds those steps from before."""
    experiment = ExperimentInfo(name="held_branch")
    trial = TrialInfo("h2", "trial_h2", "held_branch", config={"lr": 0.1})
    run_id = _first_process(shared_db, experiment, trial, range(1, 6))

    second = _reopening_process(shared_db, experiment, trial)
    _send(second, trial, range(1, 9), offset=100.0)  # 1..5 dropped, 6..8 logged
    exploited = TrialInfo("h2", "trial_h2", "held_branch", config={"lr": 0.5})
    second.trackbridge_trial_start(trial=exploited, resumed=True, last_step=8)
    second.trackbridge_trial_config_update(trial=exploited, step=3, changes={"lr": 0.5})
    _send(second, exploited, range(4, 7), offset=200.0)  # the branch: logged again
    _finish(second, exploited, experiment)

    client = _client(shared_db)
    [run] = _runs(client, "held_branch").values()
    assert run.info.run_id == run_id
    for key in ("loss", "acc_top1", "batch/loss"):
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == [1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 8], key
        assert sorted(m.step for m in history if m.value >= 200.0) == [4, 5, 6], key  # once after the branch
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "trackbridge/exploit")] == [(3, 1.0)]
    assert second.held_skipped == 3 * 5


def test_a_reopened_run_logs_old_steps_of_a_metric_it_did_not_have(shared_db):
    experiment = ExperimentInfo(name="held_per_key")
    trial = TrialInfo("h3", "trial_h3", "held_per_key")
    run_id = _first_process(shared_db, experiment, trial, range(1, 4))

    second = _reopening_process(shared_db, experiment, trial)
    for step in range(1, 5):
        metrics = {"loss": 100.0 + step, "new/metric": float(step)}
        second.trackbridge_trial_result(trial=trial, step=step, metrics=metrics, timestamp=2000.0 + step)
    second.trackbridge_trial_log(trial=trial, step=2, values={"new/in_trial": 2.0}, files=[], timestamp=2000.0)
    _finish(second, trial, experiment)

    client = _client(shared_db)
    assert _steps(client, run_id, "loss") == [1, 2, 3, 4]
    assert [m.value for m in client.get_metric_history(run_id, "loss") if m.step == 4] == [104.0]
    assert _steps(client, run_id, "new/metric") == [1, 2, 3, 4]  # held is per key: old steps of a new key
    assert _steps(client, run_id, "new/in_trial") == [2]
    assert second.held_skipped == 3


def test_held_step_ranges_membership_and_counts():
    from trackbridge_mlflow.held import HeldSteps, StepRanges

    ranges = StepRanges([5, 1, 2, 3, 3, 9, -2, 10])
    assert list(ranges.ranges()) == [(-2, -2), (1, 3), (5, 5), (9, 10)] and len(ranges) == 7
    assert [s for s in range(-3, 12) if s in ranges] == [-2, 1, 2, 3, 5, 9, 10]
    held = HeldSteps({"a": StepRanges(range(1, 6)), "b": StepRanges([4, 5, 6, 20])})
    assert (held.steps, held.points, held.metrics) == (7, 9, 2)
    assert ("a", 5) in held and ("a", 6) not in held and ("b", 20) in held and ("c", 1) not in held
    assert held and not HeldSteps({})
