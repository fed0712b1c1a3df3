"""Read back what each tracker stored and check it is complete: a fast configuration that lost data fails.

For every tracker the check is the same: ``trials`` runs, and in each run every metric ``m<k>`` holding
exactly the steps ``1..results`` with the value the workload reported (``step + k/16``, see
``benchmarks.workload``). Values are read with each tracker's own reader:

- MLflow: ``MlflowClient.get_metric_history`` on the configuration's SQLite file;
- TensorBoard: TensorBoard's ``EventAccumulator`` on every directory holding event files;
- W&B offline: the ``run-*.wandb`` files (W&B's LevelDB-style log of ``wandb_internal_pb2.Record``), every
  record with ``history`` set, read with ``trackbridge_wandb_reader`` (wandb 0.31 no longer ships a
  Python reader; ours is strict: a checksum mismatch raises);
- Aim: ``aim.Repo(repo).iter_runs()`` and each run's ``metrics()`` (``benchmarks.read_aim``, in a process of
  its own). Aim 3.29 reads runs through an index that the SDK does not update: runs on disk that the index
  does not show are noted (Ray's ``AimLoggerCallback`` indexes none), the repo is reindexed with Aim's CLI
  (``aim storage --repo <repo> reindex -y``, what a user has to run, or ``aim up``) and read again;
- Comet offline: the archives (``*.zip``: ``experiment.json`` names the experiment key, ``messages.json`` holds
  one JSON message per line; each ``metric_msg`` is a metric name, value and step), what ``comet upload``
  would send. Archives with one key are one experiment.

The counting (what is a valid point, a duplicate, a complete tracker) is ``benchmarks.tally``; this module
reads each store and feeds it.

A Tune-side ``native`` callback logs metrics under other names (TBX, Aim: ``ray/tune/m00``); a tag or key counts
if it is a metric name or ends with ``/<metric name>``.

In-trial values (``--in-trial-logs N``) are checked in the same pass, as a second check per tracker
(``kind="in-trial"``): every run holding each in-trial metric ``in<k>`` at exactly the in-trial steps
``1..R*N``, with the value ``step + k/16``, once. The step is the one each tracker stores: MLflow's metric
history step, TensorBoard's ``global_step``, and W&B's ``trial_step`` carried in the same history row
(``docs/wandb.md``; W&B's own ``_step`` counts rows). A point stored twice is a *duplicate*, and fails the
check like a missing one.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable
from typing import Any

from benchmarks.tally import TrackerCheck
from benchmarks.tally import tallies as new_tallies
from benchmarks.workload import in_trial_names
from trackbridge_wandb_reader import CorruptLog, iter_records, wait_until_complete
from trackbridge_wandb_reader import run_files as wandb_run_files


# ------------------------------------------------------------------------------------------------ MLflow
def check_mlflow(tracking_uri: str, trials: int, results: int, num_metrics: int, logs: int = 0) -> list[TrackerCheck]:
    started = time.perf_counter()
    tallies = new_tallies("mlflow", trials, results, num_metrics, logs)
    path = tracking_uri.removeprefix("sqlite:///")
    if tracking_uri.startswith("sqlite:///") and not os.path.exists(path):
        for t in tallies:
            t.check.problems.append(f"no store: {path} does not exist")
        return [t.done(started) for t in tallies]
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = client.search_experiments(view_type=ViewType.ALL)
    ids = [e.experiment_id for e in experiments]
    runs = []
    token = None
    while ids:
        page = client.search_runs(ids, run_view_type=ViewType.ALL, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    for run in runs:
        run_id = run.info.run_id
        for key in run.data.metrics:
            for t in tallies:
                if t.metric_of(key) is None:
                    continue
                for m in client.get_metric_history(run_id, key):
                    t.add(run_id, key, int(m.step), float(m.value))
    return [t.done(started) for t in tallies]


# ------------------------------------------------------------------------------------------------ TensorBoard
def check_tensorboard(root: str, trials: int, results: int, num_metrics: int, logs: int = 0) -> list[TrackerCheck]:
    """Every directory under ``root`` holding ``events.out.tfevents.*`` files is one run."""
    started = time.perf_counter()
    tallies = new_tallies("tensorboard", trials, results, num_metrics, logs)
    from tensorboard.backend.event_processing import event_accumulator as ea

    run_dirs = sorted(
        {os.path.dirname(p) for p in glob.glob(os.path.join(root, "**", "events.out.tfevents.*"), recursive=True)}
    )
    for run_dir in run_dirs:
        acc = ea.EventAccumulator(run_dir, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            for t in tallies:
                if t.metric_of(tag) is None:
                    continue
                for event in acc.Scalars(tag):
                    t.add(run_dir, tag, int(event.step), float(event.value))
    return [t.done(started) for t in tallies]


# ------------------------------------------------------------------------------------------------ W&B offline
def _wait_complete(path: str, timeout: float) -> bool:
    """A run file is complete when it parses, holds an exit record and stopped growing (W&B's service
    writes it asynchronously, after ``finish()`` returned)."""
    try:
        wait_until_complete(path, timeout)
        return True
    except TimeoutError:
        return False


def _number(value_json: str) -> float | None:
    try:
        value = json.loads(value_json)
    except ValueError:
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def check_wandb(
    root: str, trials: int, results: int, num_metrics: int, logs: int = 0, wait: float = 20.0
) -> list[TrackerCheck]:
    started = time.perf_counter()
    tallies = new_tallies("wandb", trials, results, num_metrics, logs)
    tally = tallies[0]
    files = wandb_run_files(root)
    for path in files:
        if not _wait_complete(path, wait):
            for t in tallies:
                t.check.problems.append(f"{os.path.basename(path)}: no exit record (run not finished)")
        run_id = ""
        try:
            for record in iter_records(path):
                kind = record.WhichOneof("record_type")
                if kind == "run":
                    run_id = record.run.run_id
                elif kind == "history":
                    row = {(item.key or "/".join(item.nested_key)): item.value_json for item in record.history.item}
                    for key, value_json in row.items():
                        if tally.metric_of(key) is None:
                            continue
                        value = _number(value_json)
                        if value is not None:
                            tally.add(run_id or path, key, None, value)
                    if logs and "trial_step" in row:  # an in-trial row: its step is trial_step, not _step
                        trial_step = _number(row["trial_step"])
                        step = int(trial_step) if trial_step is not None and trial_step.is_integer() else None
                        for key, value_json in row.items():
                            value = _number(value_json)
                            if key != "trial_step" and value is not None:
                                tallies[1].add(run_id or path, key, step, value)
        except CorruptLog as exc:
            for t in tallies:
                t.check.problems.append(str(exc))
    return [t.done(started) for t in tallies]


# ------------------------------------------------------------------------------------------------ Aim
def _read_aim(repo: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.read_aim", repo], capture_output=True, text=True, check=False, timeout=600
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmarks.read_aim failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def aim_cli() -> list[str]:
    """Aim's command line, from this environment."""
    beside = os.path.join(os.path.dirname(sys.executable), "aim")
    return [beside] if os.path.exists(beside) else [shutil.which("aim") or "aim"]


def check_aim(repo: str, trials: int, results: int, num_metrics: int, logs: int = 0) -> list[TrackerCheck]:
    """Every run ``aim.Repo(repo).iter_runs()`` shows, every metric series at its steps; when the index shows
    fewer runs than the repo holds, noted, then ``aim storage reindex`` and read again."""
    started = time.perf_counter()
    tallies = new_tallies("aim", trials, results, num_metrics, logs)
    if not os.path.isdir(os.path.join(repo, ".aim")):
        for t in tallies:
            t.check.problems.append(f"no store: {repo}/.aim does not exist")
        return [t.done(started) for t in tallies]
    data = _read_aim(repo)
    indexed, on_disk = len(data["runs"]), data["on_disk"]
    if indexed < on_disk:
        cli = [*aim_cli(), "storage", "--repo", repo, "reindex", "-y"]
        done = subprocess.run(cli, capture_output=True, text=True, check=False, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"aim storage reindex failed: {done.stderr.strip()[-500:]}")
        data = _read_aim(repo)
        note = f"{indexed}/{on_disk} runs indexed; read after `aim storage reindex`"
    else:
        note = f"{indexed}/{on_disk} runs indexed"
    for t in tallies:
        t.check.notes.append(note)
    for run in data["runs"]:
        for name, points in run["series"].items():
            for t in tallies:
                if t.metric_of(name) is None:
                    continue
                for step, value in points:
                    t.add(run["hash"], name, int(step), float(value))
    return [t.done(started) for t in tallies]


# ------------------------------------------------------------------------------------------------ Comet offline
def comet_metrics(path: str) -> tuple[str, list[tuple[str, Any, int | None]]]:
    """(experiment key, [(metric name, value, step), ...] in message order) of one offline archive."""
    with zipfile.ZipFile(path) as z:
        key = json.loads(z.read("experiment.json"))["offline_id"]
        points = []
        for line in z.read("messages.json").decode("utf-8").splitlines():
            if not line.strip():
                continue
            message = json.loads(line)
            if message.get("type") == "metric_msg":
                m = message["payload"]["metric"]
                points.append((m["metricName"], m["metricValue"], m.get("step")))
    return key, points


def check_comet(directory: str, trials: int, results: int, num_metrics: int, logs: int = 0) -> list[TrackerCheck]:
    """Every archive in ``directory``: each experiment (key) a run, every metric message at its step."""
    started = time.perf_counter()
    tallies = new_tallies("comet", trials, results, num_metrics, logs)
    paths = sorted(glob.glob(os.path.join(glob.escape(directory), "*.zip")))
    if not paths:
        for t in tallies:
            t.check.problems.append(f"no archive in {directory}")
    for path in paths:
        try:
            key, points = comet_metrics(path)
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            for t in tallies:
                t.check.problems.append(f"{os.path.basename(path)}: unreadable archive ({type(exc).__name__}: {exc})")
            continue
        for name, value, step in points:
            for t in tallies:
                if t.metric_of(name) is None:
                    continue
                number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
                if number is None:
                    try:
                        number = float(value)  # Comet may store a number as its text
                    except (TypeError, ValueError):
                        number = float("nan")
                t.add(key, name, -1 if step is None else int(step), float(number))  # no step: a wrong one
    return [t.done(started) for t in tallies]


# ------------------------------------------------------------------------------------------------ all
def check_all(
    trackers: Iterable[str], root: str, trials: int, results: int, num_metrics: int, in_trial_logs: int = 0
) -> list[TrackerCheck]:
    """Check each tracker's store of the configuration that wrote under ``root`` (layout: benchmarks.configs);
    with ``in_trial_logs`` N > 0, the in-trial values too (a second check per tracker)."""
    from benchmarks import configs

    checks = []
    for tracker in trackers:
        try:
            if tracker == "mlflow":
                checks += check_mlflow(configs.mlflow_uri(root), trials, results, num_metrics, in_trial_logs)
            elif tracker == "tensorboard":
                checks += check_tensorboard(root, trials, results, num_metrics, in_trial_logs)
            elif tracker == "wandb":
                checks += check_wandb(configs.wandb_dir(root), trials, results, num_metrics, in_trial_logs)
            elif tracker == "aim":
                checks += check_aim(configs.aim_repo(root), trials, results, num_metrics, in_trial_logs)
            elif tracker == "comet":
                checks += check_comet(configs.comet_dir(root), trials, results, num_metrics, in_trial_logs)
            else:
                raise ValueError(f"unknown tracker {tracker!r}")
        except Exception as exc:  # a reader that fails is a failed check, not a crashed benchmark
            failed = [TrackerCheck(tracker, expected=trials * results * num_metrics, expected_runs=trials)]
            if in_trial_logs:
                expected = trials * results * in_trial_logs * len(in_trial_names())
                failed.append(TrackerCheck(tracker, expected=expected, kind="in-trial", expected_runs=trials))
            for check in failed:
                check.problems.append(f"reading back failed: {type(exc).__name__}: {exc}")
            checks += failed
    return checks
