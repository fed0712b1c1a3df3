"""Reliability across every first-party plugin at once, with real Tune runs and the real trackers:
bad input, planted secrets, runs that end without a completion from Tune, and a two-node cluster."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from ray import tune

from tests import wandb_reader
from tests.aim_reader import read_repo
from tests.step_checkpoints import first_step, step_checkpoint
from trackbridge import TrackBridgeCallback

SECRET_KEY = "wandb-key-PLANTED-0123456789abcdef0123456789abcdef"
SECRET_TOKEN = "mlflow-token-PLANTED-42"
SECRET_PASSWORD = "db-password-PLANTED-hunter2"
SECRET_URI_PASSWORD = "uri-password-PLANTED-77"
SECRET_CONFIG_KEY = "config-api-key-PLANTED-99"
#: Credentials given to TrackBridge's plugins: in no file at all (tuner.pkl and Tune's state included).
OPTION_SECRETS = (SECRET_KEY, SECRET_TOKEN, SECRET_URI_PASSWORD)
#: Secret-looking values in the user's own trial config: in no tracker's files (Tune keeps the config it was
#: given in its own experiment state, which is the user's, not a tracker's).
CONFIG_SECRETS = (SECRET_PASSWORD, SECRET_CONFIG_KEY)
TUNE_OWN_STATE = ("basic-variant-state-", "experiment_state-", "search_gen_state-")


def _all_plugins(root: Path, **overrides) -> dict:
    plugins = {
        "wandb": {"mode": "offline", "dir": str(root), "project": "reliability"},
        "mlflow": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}"},
        "tensorboard": {},
    }
    for name, extra in overrides.items():
        plugins[name].update(extra)
    return plugins


def _tb_scalars(trial_dir: str) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(trial_dir, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _mlflow_runs(uri: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], max_results=1000)


# --------------------------------------------------------------------------- bad input
HUGE = {f"k{i}": i for i in range(2000)}


class Opaque:
    pass


def bad_input_trainable(config):
    for step in range(1, 4):
        tune.report(
            {
                "ok": float(step),
                "nan": math.nan,
                "inf": math.inf,
                "ninf": -math.inf,
                "none": None,
                "flag": step % 2 == 0,
                "np_scalar": np.float32(step / 2),
                "np_int": np.int64(step),
                "array": np.arange(5, dtype=np.float64) * step,
                "list": [1.0, 2.0, float(step)],
                "text": f"step {step}",
                "long_text": "x" * 20_000,
                "nested": {"deep": {"value": step * 1.5}},
                "key with spaces": 1.0,
                "dots.in.key": 2.0,
                "odd:chars@key!": 3.0,
                "ünïcode": 4.0,
                "mixed_list": [1, "a"],
                "empty": {},
                "object": Opaque(),
            }
        )


def test_bad_values_in_results_and_config_never_crash_and_are_handled_alike(ray_session, workdir, caplog):
    callback = TrackBridgeCallback(plugins={**_all_plugins(workdir), "aim": {"repo": str(workdir / "aim")}})
    with caplog.at_level(logging.WARNING, logger="trackbridge"):
        grid = tune.Tuner(
            bad_input_trainable,
            param_space={
                "fn": len,
                "cls": Opaque,
                "lam": lambda x: x,
                "huge": HUGE,
                "long_value": "v" * 10_000,
                "odd key/with slash": 1,
                "none": None,
                "np": np.float64(0.25),
            },
            run_config=tune.RunConfig(name="bad_input", storage_path=str(workdir / "ray"), callbacks=[callback]),
        ).fit()
    assert grid.num_errors == 0
    rows = {r["plugin"]: r for r in callback.report["plugins"]}
    for name in ("wandb", "mlflow", "tensorboard", "aim"):
        assert rows[name]["failed"] == 0 and rows[name]["dropped"] == 0, rows[name]

    [result] = list(grid)
    tid = result.metrics["trial_id"]
    numeric = ["ok", "nan", "inf", "ninf", "flag", "np_scalar", "np_int", "nested/deep/value"]

    # MLflow: every numeric series has its 3 points; NaN/inf stored as MLflow stores them
    client, [run] = _mlflow_runs(f"sqlite:///{workdir / 'mlflow.db'}", "bad_input")
    for key in numeric:
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1, 2, 3], key
    assert math.isnan(client.get_metric_history(run.info.run_id, "nan")[0].value)
    assert run.data.params["huge/k1999"] == "1999"
    assert len([k for k in run.data.params if k.startswith("huge/")]) == 2000

    # TensorBoard: the same numeric series, 3 steps each
    trial_dir = result.path
    scalars = _tb_scalars(trial_dir)
    for key in numeric:
        assert scalars[key] == [1, 2, 3], (key, sorted(scalars))

    # W&B: one run, 3 history rows holding every numeric value
    [wb] = wandb_reader.read_runs(str(workdir / "wandb"))
    assert wb.run_id == tid and len(wb.history) == 3
    for key in ("ok", "flag", "np_scalar", "np_int", "nested/deep/value"):
        assert all(key in row for row in wb.history), key
    assert wb.config["huge/k1999"] == 1999 if "huge/k1999" in wb.config else wb.config["huge"]["k1999"] == 1999

    # Aim: the same numeric series (NaN and infinities as they are), arrays as distributions, the whole config
    [aim_run] = read_repo(str(workdir / "aim")).values()
    for key in numeric:
        assert [s for s, _ in aim_run.points(key)] == [1, 2, 3], key
    assert math.isnan(aim_run.points("nan")[0][1]) and aim_run.points("inf")[0][1] == math.inf
    assert [s for s, _ in aim_run.points("array", kind="distribution")] == [1, 2, 3]
    assert aim_run.points("text", kind="text")[0] == (1, "step 1")
    assert len(aim_run.params["hparams"]["huge"]) == 2000 and aim_run.params["hparams"]["odd key/with slash"] == 1

    # skipped values: one warning per key and plugin, not one per result
    messages = [r.getMessage() for r in caplog.records]
    for name in ("mlflow", "tensorboard", "aim"):
        none_warnings = [m for m in messages if f"plugin {name!r}" in m and "'none'" in m]
        assert len(none_warnings) == 1, (name, none_warnings)


# --------------------------------------------------------------------------- secrets
def secret_trainable(config):
    for step in range(1, 3):
        tune.report({"loss": 1.0 / step})


def _files_containing(root: Path, needle: str, skip_prefixes: tuple[str, ...] = ()) -> list[str]:
    hits = []
    data = needle.encode()
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith(skip_prefixes):
            try:
                if data in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                pass
    return hits


def test_planted_secrets_appear_in_no_file_any_tracker_wrote_nor_in_the_logs(
    ray_session, workdir, caplog, mlflow_server, monkeypatch
):
    host = mlflow_server.url.split("://", 1)[1]
    uri_with_credentials = f"http://user:{SECRET_URI_PASSWORD}@{host}"
    plugins = _all_plugins(
        workdir,
        wandb={"api_key": SECRET_KEY},
        mlflow={"tracking_uri": uri_with_credentials, "tracking_token": SECRET_TOKEN, "experiment_name": "secrets"},
    )
    with caplog.at_level(logging.DEBUG):
        callback = TrackBridgeCallback(plugins=plugins)
        grid = tune.Tuner(
            secret_trainable,
            param_space={"lr": 0.1, "db": {"password": SECRET_PASSWORD}, "service_api_key": SECRET_CONFIG_KEY},
            run_config=tune.RunConfig(name="secrets", storage_path=str(workdir / "ray"), callbacks=[callback]),
        ).fit()
    assert grid.num_errors == 0
    rows = {r["plugin"]: r for r in callback.report["plugins"]}
    assert all(r["failed"] == 0 for r in rows.values()), rows

    # what was stored is real: the config arrived, redacted
    client, [run] = _mlflow_runs(mlflow_server.url, "secrets")
    assert run.data.params["lr"] == "0.1" and run.data.params["db/password"] == "***REDACTED***"
    [wb] = wandb_reader.read_runs(str(workdir / "wandb"))
    assert len(wb.history) == 2

    server_files = Path(mlflow_server.backend_store_uri.removeprefix("sqlite:///")).parent
    for secret in OPTION_SECRETS + CONFIG_SECRETS:
        skip = TUNE_OWN_STATE if secret in CONFIG_SECRETS else ()
        assert _files_containing(workdir, secret, skip) == [], secret  # W&B dir, TB events, tuner.pkl, report
        assert _files_containing(server_files, secret) == [], secret  # the MLflow server's store and artifacts
        assert not [r for r in caplog.records if secret in r.getMessage()], secret
    assert (workdir / "ray" / "secrets" / "tuner.pkl").exists()


# --------------------------------------------------------------------------- runs that Tune never completes
def endless_trainable(config):
    import time

    step = 0
    while True:
        step += 1
        time.sleep(0.05)
        tune.report({"loss": 1.0 / step})


class StopAllOnceEveryTrialReported(tune.stopper.Stopper):
    """Ends the experiment (like a time budget or Ctrl+C) while every trial is still running."""

    def __init__(self, trials: int, results: int) -> None:
        self.trials, self.results, self.seen = trials, results, {}

    def __call__(self, trial_id, result):
        self.seen[trial_id] = result["training_iteration"]
        return False

    def stop_all(self):
        return len(self.seen) == self.trials and min(self.seen.values()) >= self.results


def test_trials_still_running_at_experiment_end_are_finished_as_unfinished_everywhere(ray_session, workdir):
    callback = TrackBridgeCallback(plugins=_all_plugins(workdir))
    grid = tune.Tuner(
        # Half a CPU each: the stopper needs both trials running at once, and in the shared Ray session a CPU
        # may still be held by an earlier test's leftovers (a CI run once hung here with one trial pending).
        tune.with_resources(endless_trainable, {"cpu": 0.5}),
        param_space={"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(
            name="unfinished",
            storage_path=str(workdir / "ray"),
            callbacks=[callback],
            stop=StopAllOnceEveryTrialReported(trials=2, results=3),
        ),
    ).fit()
    trial_ids = {r.metrics["trial_id"] for r in grid}
    assert len(trial_ids) == 2

    client, runs = _mlflow_runs(f"sqlite:///{workdir / 'mlflow.db'}", "unfinished")
    assert {r.data.tags["trial_id"] for r in runs} == trial_ids
    assert {r.info.status for r in runs} == {"KILLED"}

    wb_runs = wandb_reader.read_runs(str(workdir / "wandb"))
    assert {r.run_id for r in wb_runs} == trial_ids
    assert {r.exit_code for r in wb_runs} == {2}
    assert {r.summary.get("tune/status") for r in wb_runs} == {"unfinished"}
    for result in grid:
        assert len(_tb_scalars(result.path)["loss"]) >= 1


# --------------------------------------------------------------------------- two nodes
def test_two_node_cluster_tracks_every_trial_its_in_trial_values_and_remote_checkpoints(tmp_path):
    script = Path(__file__).with_name("scripts") / "multinode_run.py"
    plugins = _all_plugins(
        tmp_path, wandb={"upload_checkpoints": True}, mlflow={"save_artifact": True, "experiment_name": "multinode"}
    )
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), json.dumps(plugins)], capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["errors"] == 0
    nodes = {t["node"] for t in summary["trials"].values()}
    assert len(summary["cluster_nodes"]) == 2 and len(nodes) == 2  # one trial on each node
    assert all(r["failed"] == 0 and r["dropped"] == 0 for r in summary["report"]["plugins"])

    client, runs = _mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "multinode")
    assert {r.data.tags["trial_id"] for r in runs} == set(summary["trials"])
    for run in runs:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(1, 7))
        # logged inside the trial, on whichever node it ran: its own steps, and the file
        assert [m.step for m in client.get_metric_history(run.info.run_id, "inner/loss")] == list(range(1, 13))
        where = client.download_artifacts(run.info.run_id, "logged/where.txt", str(tmp_path / f"w_{run.info.run_id}"))
        assert Path(where).read_text() == summary["trials"][run.data.tags["trial_id"]]["node"]
        listed = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
        assert listed == {"checkpoints/3", "checkpoints/6"}, listed
        local = client.download_artifacts(run.info.run_id, "checkpoints/6", str(tmp_path / f"dl_{run.info.run_id}"))
        node_file = Path(local) / "node.txt"
        assert node_file.read_text() == summary["trials"][run.data.tags["trial_id"]]["node"]

    wb_runs = wandb_reader.read_runs(str(tmp_path / "wandb"))
    assert {r.run_id for r in wb_runs} == set(summary["trials"])
    for wb in wb_runs:
        assert [row["training_iteration"] for row in wb.history if "training_iteration" in row] == list(range(1, 7))
        assert [row["trial_step"] for row in wb.history if "inner/loss" in row] == list(range(1, 13))
        assert sorted(a.type for a in wb.artifacts) == ["model", "model", "trial-file"]

    trial_dirs = [p.parent for p in (tmp_path / "ray" / "multinode").glob("*/events.out.tfevents.*")]
    assert len(set(trial_dirs)) == 2
    for trial_dir in set(trial_dirs):
        scalars = _tb_scalars(str(trial_dir))
        assert scalars["loss"] == list(range(1, 7)) and scalars["inner/loss"] == list(range(1, 13))


# --------------------------------------------------------------------------- a tracker briefly gone
def steady_trainable(config):
    import time

    for step in range(1, config["n"] + 1):
        time.sleep(0.1)
        tune.report({"loss": 1.0 / step})


def test_mlflow_server_briefly_gone_loses_nothing(ray_session, workdir, monkeypatch):
    import threading
    import time

    from mlflow import MlflowClient

    from tests.mlflow_server import start_server, stop_server

    # The server without MLflow's job runner (a second process importing all of MLflow at each start, for GenAI
    # jobs the tracking API never uses): it starts, and comes back after the outage, in about half the time.
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    # MLflow's client retries a refused connection with exponential backoff: by default 7 retries, at once, then
    # 4, 8, 16, 32, 64 and 120 s apart, so the plugin may wait up to as long again as the outage for the first
    # retry after the server is back. Backoff factor 1 and one more retry: at once, then 2, 4, 8, ..., 64 and 120 s
    # apart, the same patience in all (about four minutes), the first retry after the server is back twice as soon.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "8")
    proc, server = start_server(workdir / "server")
    port = int(server.url.rsplit(":", 1)[1])
    state = {"proc": proc, "held": None}

    def outage():
        # Once MLflow holds steps of both trials (they are running and logging), the server goes away.
        client = MlflowClient(tracking_uri=server.url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                experiment = client.get_experiment_by_name("outage")
                runs = client.search_runs([experiment.experiment_id]) if experiment else []
                held = [len(client.get_metric_history(r.info.run_id, "loss")) for r in runs]
            except Exception:
                held = []
            if len(held) == 2 and min(held) >= 5:
                state["held"] = held
                break
            time.sleep(0.2)
        stop_server(state["proc"])
        time.sleep(2)  # the server is gone (and for as long again while it restarts): every call fails until it is back
        state["proc"], _ = start_server(workdir / "server", port=port)

    callback = TrackBridgeCallback(plugins={"mlflow": {"tracking_uri": server.url, "experiment_name": "outage"}})
    chaos = threading.Thread(target=outage)
    try:
        chaos.start()
        grid = tune.Tuner(
            tune.with_resources(steady_trainable, {"cpu": 0.5}),  # both trials at once, as the outage needs
            param_space={"n": 120, "x": tune.grid_search([1, 2])},
            run_config=tune.RunConfig(name="outage", storage_path=str(workdir / "ray"), callbacks=[callback]),
        ).fit()
        chaos.join()
        assert state["held"], "MLflow never held steps of both trials: the outage did not hit running trials"
        assert grid.num_errors == 0
        [row] = callback.report["plugins"]
        assert row["failed"] == 0 and row["dropped"] == 0, row
        assert row["max_lag_seconds"] > 2.0, row  # the outage was felt: the plugin waited for the server
        client, runs = _mlflow_runs(server.url, "outage")
        assert len(runs) == 2
        for run in runs:
            assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(1, 121))
            assert run.info.status == "FINISHED"
    finally:
        chaos.join()
        stop_server(state["proc"])


# --------------------------------------------------------------------------- retried trials
def flaky_trainable(config):
    marker = os.path.join(config["marker_dir"], f"failed_{config['x']}")
    for step in range(first_step(), 9):
        if step == 5 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("worker lost")
        tune.report({"loss": 1.0 / step}, checkpoint=step_checkpoint(step) if step % 3 == 0 else None)


def test_trials_retried_by_tune_keep_one_run_per_tracker_without_repeated_steps(ray_session, workdir):
    callback = TrackBridgeCallback(plugins=_all_plugins(workdir))
    grid = tune.Tuner(
        flaky_trainable,
        param_space={"x": tune.grid_search([1, 2]), "marker_dir": str(workdir)},
        run_config=tune.RunConfig(
            name="retried",
            storage_path=str(workdir / "ray"),
            callbacks=[callback],
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    ).fit()
    assert grid.num_errors == 0
    trial_ids = {r.metrics["trial_id"] for r in grid}
    client, runs = _mlflow_runs(f"sqlite:///{workdir / 'mlflow.db'}", "retried")
    assert sorted(r.data.tags["trial_id"] for r in runs) == sorted(trial_ids)
    for run in runs:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(1, 9))
        assert run.info.status == "FINISHED"
    by_id = wandb_reader.runs_by_id(str(workdir / "wandb"))
    assert set(by_id) == trial_ids
    for parts in by_id.values():
        steps = [row["training_iteration"] for part in parts for row in part.history]
        assert steps == list(range(1, 9))
    for result in grid:
        assert _tb_scalars(result.path)["loss"] == list(range(1, 9))
