"""``trackbridge.replay`` with real Tune runs and real trackers, read back with each tracker's own reader.

- An MLflow server goes away in the middle of a live run and comes back only after ``fit()`` returned: the
  live run loses points, and ``replay(..., only_missing=True)`` adds exactly those (no step twice, none left
  out), and a second such replay adds nothing.
- An experiment that ran without TrackBridge at all, on S3-compatible storage (moto on 127.0.0.1), is
  replayed from the bucket into MLflow (with its checkpoints as artifacts) and TensorBoard, through the API
  and through the ``trackbridge replay`` command with an ``s3://`` URI.

Tune's JSON logger (``result.json``, what replay reads) is off for the test session (conftest): every test
here turns it back on before ``fit()``.
"""

from __future__ import annotations

import json
import os
import posixpath
import threading
import time
from pathlib import Path

from ray import tune

from tests.mlflow_server import start_server, stop_server
from tests.step_checkpoints import step_checkpoint
from trackbridge import TrackBridgeCallback
from trackbridge.replay import REPLAY_REPORT_FILE, replay

TRIAL_ID_TAG = "trial_id"  # what the MLflow plugin tags each trial's run with (trackbridge_mlflow.store)


# --------------------------------------------------------------------------- readers
def _tune_steps(rows: list[dict]) -> list[int]:
    return [row["training_iteration"] for row in rows]


def _result_rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _mlflow_runs(client, experiment_name: str) -> list:
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None, experiment_name
    return client.search_runs([experiment.experiment_id], max_results=1000)


def _histories(client, runs) -> dict[str, dict[str, list[int]]]:
    """Per trial id, per metric key of its run, the steps of the metric's history in the order MLflow keeps
    them (one entry per stored point: a step stored twice shows twice)."""
    found: dict[str, dict[str, list[int]]] = {}
    for run in runs:
        trial_id = run.data.tags[TRIAL_ID_TAG]
        assert trial_id not in found, f"a second run for trial {trial_id}"
        found[trial_id] = {
            key: sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) for key in run.data.metrics
        }
    return found


def _tb_scalars(run_dir: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {tag: sorted(e.step for e in acc.Scalars(tag)) for tag in acc.Tags()["scalars"]}


# --------------------------------------------------------------------------- an MLflow server outage
OUTAGE_STEPS = 40
WAIT_AT = 15  # the trials hold here until the server is down, so the outage always hits running trials


def outage_trainable(config):
    for step in range(1, config["n"] + 1):
        if step == config["wait_at"]:
            deadline = time.time() + 90
            while not os.path.exists(config["marker"]) and time.time() < deadline:
                time.sleep(0.05)
        time.sleep(0.05)
        tune.report({"loss": 1.0 / step, "acc": step / config["n"]})
    if config["x"] == 2:
        raise RuntimeError("planned failure after the last step")


def test_replay_only_missing_after_an_mlflow_server_outage_stores_every_step_exactly_once(
    ray_session, workdir, monkeypatch
):
    from mlflow import MlflowClient

    monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")  # result.json: what replay reads
    # While the server is down each MLflow call fails at once instead of retrying for minutes.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    # The server without MLflow's job runner (a second process importing all of MLflow at each start, for GenAI
    # jobs the tracking API never uses): it starts, and comes back after the outage, in about half the time.
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    store = workdir / "server"
    proc, server = start_server(store)
    port = int(server.url.rsplit(":", 1)[1])
    name = "outage_replay"
    options = {"tracking_uri": server.url, "experiment_name": name}
    marker = workdir / "server_is_down"
    state: dict = {"proc": proc, "points_before": None}

    def outage() -> None:
        # Stop the server once MLflow holds every step both trials reported before they wait, then let them go on.
        client = MlflowClient(tracking_uri=server.url)
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                try:
                    runs = _mlflow_runs(client, name) if client.get_experiment_by_name(name) else []
                    held = [len(client.get_metric_history(r.info.run_id, "loss")) for r in runs]
                except Exception:
                    held = []
                if len(held) == 2 and min(held) >= WAIT_AT - 1:  # all they report before they wait: none in flight
                    state["points_before"] = held
                    break
                time.sleep(0.2)
            stop_server(state["proc"])
        finally:
            marker.touch()

    # MLflow's errors are no TransientError (the plugin declares no retry_on), so they are not retried anyway;
    # stuck_timeout and drain_timeout bound a call that would hang instead of failing.
    callback = TrackBridgeCallback(
        plugins={"mlflow": options}, drain_timeout=20, max_retries=1, retry_backoff=0.1, stuck_timeout=30
    )
    chaos = threading.Thread(target=outage, daemon=True)
    try:
        chaos.start()
        grid = tune.Tuner(
            outage_trainable,
            param_space={"x": tune.grid_search([1, 2]), "n": OUTAGE_STEPS, "wait_at": WAIT_AT, "marker": str(marker)},
            run_config=tune.RunConfig(name=name, storage_path=str(workdir / "ray"), callbacks=[callback]),
        ).fit()
        chaos.join(timeout=150)
        assert state["points_before"], "MLflow never held the first steps of both trials: no outage at the right time"

        # Tune's own account: steps, statuses, configs.
        tune_trials = {}
        for result in grid:
            rows = _result_rows(Path(result.path, "result.json").read_text())
            tune_trials[rows[0]["trial_id"]] = {
                "steps": _tune_steps(rows),
                "status": "FAILED" if result.error is not None else "FINISHED",
                "config": result.config,
                "name": f"outage_trainable_{rows[0]['trial_id']}",
            }
        assert sorted(t["status"] for t in tune_trials.values()) == ["FAILED", "FINISHED"]
        assert all(t["steps"] == list(range(1, OUTAGE_STEPS + 1)) for t in tune_trials.values())

        # The live run lost points, and said so.
        [live] = callback.report["plugins"]
        assert live["failed"] > 0 or live["dropped"] > 0 or not live["drained"], live

        # Back up, the server holds what it had before the outage, and only that. From here on MLflow's client
        # retries and waits as it does by default: a server just restarted on a busy machine may take more than 3 s
        # to answer its first request.
        proc, _ = start_server(store, port=port)
        state["proc"] = proc
        monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
        monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT")
        client = MlflowClient(tracking_uri=server.url)
        runs_before = _mlflow_runs(client, name)
        before = _histories(client, runs_before)
        assert {r.info.status for r in runs_before} == {"RUNNING"}  # their completions were lost too
        assert len(before) == 2
        held_steps = list(range(1, WAIT_AT))
        assert before == {tid: {"loss": held_steps, "acc": held_steps} for tid in tune_trials}, before

        exp_path = str(workdir / "ray" / name)
        first = replay(exp_path, {"mlflow": options}, only_missing=True)
        [row] = first["plugins"]
        assert row["failed"] == 0 and row["dropped"] == 0 and row["drained"], row
        assert first["replay"]["trials"] == 2 and first["replay"]["trials_replayed"] == 2, first["replay"]
        assert first["replay"]["skipped_trials"] == [], first["replay"]
        assert first["replay"]["results_read"] == sum(len(t["steps"]) for t in tune_trials.values())
        assert Path(exp_path, REPLAY_REPORT_FILE).exists()

        runs = _mlflow_runs(client, name)
        after = _histories(client, runs)
        assert sorted(after) == sorted(tune_trials)  # exactly one run per trial, no run added
        for run in runs:
            trial = tune_trials[run.data.tags[TRIAL_ID_TAG]]
            histories = after[run.data.tags[TRIAL_ID_TAG]]
            assert {"loss", "acc"} <= set(histories), histories
            for key, steps in histories.items():
                assert steps == trial["steps"], ("mlflow", trial["name"], key, steps)
            assert run.info.status == trial["status"], (trial["name"], run.info.status)
            assert run.data.params == {k: str(v) for k, v in trial["config"].items()}
            assert run.info.run_name == trial["name"]
            if trial["status"] == "FAILED":  # the error Tune wrote in error.txt, as the live run would tag it
                assert "planned failure after the last step" in run.data.tags["error"]
            else:
                assert "error" not in run.data.tags

        # The journal knew what MLflow held before the outage: those results were not sent again, and every
        # other result was delivered once (MLflow itself would hide a point sent twice with Tune's timestamp
        # and value: its store keeps identical points once). Besides results: setup, experiment start and
        # end, and each trial's start and completion.
        assert row["skipped_replays"] == len(held_steps) * len(tune_trials), row
        non_results = 3 + 2 * len(tune_trials)
        assert row["delivered"] - non_results + row["skipped_replays"] == first["replay"]["results_read"], row

        # A second fill finds nothing missing: it sends no trial event at all and changes nothing.
        second = replay(exp_path, {"mlflow": options}, only_missing=True)
        [row2] = second["plugins"]
        assert row2["failed"] == 0 and row2["dropped"] == 0 and row2["drained"], row2
        assert row2["skipped_replays"] == second["replay"]["results_read"] == first["replay"]["results_read"], row2
        assert row2["delivered"] <= 3, row2  # setup, experiment start and end: no trial's start, result or end
        runs2 = _mlflow_runs(client, name)
        assert _histories(client, runs2) == after
        assert {r.info.run_id: r.info.status for r in runs2} == {r.info.run_id: r.info.status for r in runs}
    finally:
        marker.touch()
        chaos.join(timeout=150)
        stop_server(state["proc"])


# --------------------------------------------------------------------------- no TrackBridge, S3 storage
BUCKET = "replays"
S3_STEPS = 6


def s3_trainable(config):
    for step in range(1, S3_STEPS + 1):
        if config["x"] == 2 and step == 5:
            raise RuntimeError("planned failure at step 5")
        tune.report(
            {"loss": 1.0 / step, "x2": config["x"] * step}, checkpoint=step_checkpoint(step) if step % 2 == 0 else None
        )


def _check_replayed(tmp: Path, mlflow_db: Path, tb_dir: Path, expected: dict, name: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
    runs = _mlflow_runs(client, name)
    histories = _histories(client, runs)
    assert sorted(histories) == sorted(expected)  # one run per trial
    for run in runs:
        trial = expected[run.data.tags[TRIAL_ID_TAG]]
        assert run.info.run_name == trial["name"]
        assert {"loss", "x2"} <= set(histories[run.data.tags[TRIAL_ID_TAG]])
        for key, steps in histories[run.data.tags[TRIAL_ID_TAG]].items():
            assert steps == trial["steps"], ("mlflow", trial["name"], key, steps)
        assert run.info.status == trial["status"]
        if trial["status"] == "FAILED":  # from the error.txt in the bucket
            assert "planned failure at step 5" in run.data.tags["error"]
        assert run.data.params == {k: str(v) for k, v in trial["config"].items()}
        stored = sorted(a.path for a in client.list_artifacts(run.info.run_id, "checkpoints"))
        assert stored == [f"checkpoints/{s}" for s in trial["checkpoints"]], (trial["name"], stored)
        for step in trial["checkpoints"]:
            local = client.download_artifacts(run.info.run_id, f"checkpoints/{step}", str(tmp / "dl"))
            assert Path(local, "step").read_text() == str(step)

        scalars = _tb_scalars(tb_dir / trial["name"])
        assert {"loss", "x2"} <= set(scalars), scalars
        for tag, steps in scalars.items():
            assert steps == trial["steps"], ("tensorboard", trial["name"], tag, steps)


def test_an_experiment_run_without_trackbridge_on_s3_replays_into_mlflow_and_tensorboard(
    ray_session, workdir, monkeypatch, s3_server, capsys
):
    import pyarrow.fs

    from trackbridge.cli import main

    monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
    port, s3 = s3_server.port, s3_server.client
    filesystem = pyarrow.fs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        endpoint_override=f"127.0.0.1:{port}",
        scheme="http",
        region="us-east-1",
    )
    name = "plain"
    grid = tune.Tuner(
        s3_trainable,
        param_space={"x": tune.grid_search([1, 2]), "lr": 0.01},
        run_config=tune.RunConfig(
            name=name,
            storage_path=f"{BUCKET}/runs",
            storage_filesystem=filesystem,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),  # Tune deletes the older checkpoints
        ),
    ).fit()
    exp_path = f"{BUCKET}/runs/{name}"

    # Tune's account, read from the bucket itself.
    expected: dict = {}
    gone = 0
    for result in grid:
        trial_path = result.path  # a path in the bucket
        with filesystem.open_input_stream(posixpath.join(trial_path, "result.json")) as f:
            rows = _result_rows(f.read().decode())
        existing = []
        for row in rows:
            if row.get("checkpoint_dir_name"):
                info = filesystem.get_file_info(posixpath.join(trial_path, row["checkpoint_dir_name"]))
                if info.type == pyarrow.fs.FileType.Directory:
                    existing.append(row["training_iteration"])
                else:
                    gone += 1
        expected[rows[0]["trial_id"]] = {
            "steps": _tune_steps(rows),
            "status": "FAILED" if result.error is not None else "FINISHED",
            "config": result.config,
            "name": f"s3_trainable_{rows[0]['trial_id']}",
            "checkpoints": existing,
        }
    by_status = {t["status"]: t for t in expected.values()}
    assert by_status["FINISHED"]["steps"] == list(range(1, S3_STEPS + 1))
    assert by_status["FAILED"]["steps"] == [1, 2, 3, 4]
    assert by_status["FINISHED"]["checkpoints"] == [6] and by_status["FAILED"]["checkpoints"] == [4]
    assert gone == 3  # 2 and 4 of the finished trial, 2 of the failed one
    assert not any(k.endswith("trackbridge_report.json") for k in _keys(s3))  # no TrackBridge in that run

    mlflow_db, tb_dir = workdir / "m.db", workdir / "tb"
    report = replay(
        exp_path,
        {
            "mlflow": {"tracking_uri": f"sqlite:///{mlflow_db}", "save_artifact": True},
            "tensorboard": {"logdir": str(tb_dir)},
        },
        storage_filesystem=filesystem,
    )
    account = report["replay"]
    assert account["trials"] == account["trials_replayed"] == 2, account
    assert account["results_read"] == sum(len(t["steps"]) for t in expected.values())
    assert account["checkpoints_gone"] == gone and account["skipped_trials"] == [] and account["never_started"] == 0
    for row in report["plugins"]:
        assert row["failed"] == 0 and row["dropped"] == 0 and row["drained"], row
    _check_replayed(workdir, mlflow_db, tb_dir, expected, name)

    # The report went into the bucket, next to Tune's files (not to a local folder named after the bucket).
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=f"runs/{name}/{REPLAY_REPORT_FILE}")["Body"].read())
    assert stored["replay"]["results_read"] == account["results_read"]
    assert report["path"] == f"s3://{exp_path}/{REPLAY_REPORT_FILE}"
    assert not (workdir / BUCKET).exists()

    # The command line, with the experiment as an s3:// URI (credentials from the environment), into new stores.
    cli_db, cli_tb = workdir / "cli.db", workdir / "cli_tb"
    uri = f"s3://{exp_path}?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    status = main(
        [
            "replay",
            uri,
            "--plugins",
            "mlflow,tensorboard",
            "--option",
            f"mlflow.tracking_uri=sqlite:///{cli_db}",
            "--option",
            "mlflow.save_artifact=true",
            "--option",
            f"tensorboard.logdir={cli_tb}",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert f"trials: 2 read of 2; results read: {account['results_read']};" in out
    assert f"checkpoints gone: {gone}" in out and f"report: s3://{exp_path}/{REPLAY_REPORT_FILE}" in out, out
    _check_replayed(workdir, cli_db, cli_tb, expected, name)


def _keys(s3) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
