"""Read back what each tracker stored and check it is complete: a fast configuration that lost data fails.

For every tracker the check is the same: ``trials`` runs, and in each run every metric ``m<k>`` holding
exactly the steps ``1..results`` with the value the workload reported (``step + k/16``, see
``benchmarks.workload``). Values are read with each tracker's own reader:

- MLflow: ``MlflowClient.get_metric_history`` on the configuration's SQLite file;
- TensorBoard: TensorBoard's ``EventAccumulator`` on every directory holding event files;
- W&B offline: the ``run-*.wandb`` files (W&B's LevelDB-style log of ``wandb_internal_pb2.Record``), every
  record with ``history`` set, read with ``trackbridge_wandb_reader`` (wandb 0.31 no longer ships a
  Python reader; ours is strict: a checksum mismatch raises).

A Tune-side ``native`` callback logs metrics under other names (TBX: ``ray/tune/m00``); a tag or key counts
if it is a metric name or ends with ``/<metric name>``.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.workload import metric_names, metric_value
from trackbridge_wandb_reader import CorruptLog, iter_records, wait_until_complete
from trackbridge_wandb_reader import run_files as wandb_run_files


@dataclass
class TrackerCheck:
    """What one tracker holds after one configuration ran."""

    tracker: str
    expected: int
    #: Values read back that belong to a metric of the workload (duplicates included).
    stored: int = 0
    #: Distinct (run, metric, step) with the right value.
    valid: int = 0
    runs: int = 0
    expected_runs: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.valid == self.expected and self.runs == self.expected_runs and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "tracker": self.tracker,
            "expected": self.expected,
            "stored": self.stored,
            "valid": self.valid,
            "runs": self.runs,
            "expected_runs": self.expected_runs,
            "complete": self.complete,
            "problems": self.problems[:5],
            "seconds": round(self.seconds, 2),
        }


class _Tally:
    """Collects (run, metric, value-at-step) and turns them into a TrackerCheck."""

    def __init__(self, tracker: str, trials: int, results: int, num_metrics: int) -> None:
        self.names = metric_names(num_metrics)
        self.index = {name: k for k, name in enumerate(self.names)}
        self.results = results
        self.check = TrackerCheck(tracker, expected=trials * results * num_metrics, expected_runs=trials)
        self.seen: dict[str, set[tuple[str, int]]] = defaultdict(set)
        self.bad_values = 0

    def metric_of(self, key: str) -> str | None:
        if key in self.index:
            return key
        tail = key.rsplit("/", 1)[-1]
        return tail if tail in self.index else None

    def add(self, run: str, key: str, step: int | None, value: float) -> None:
        name = self.metric_of(key)
        if name is None:
            return
        self.check.stored += 1
        k = self.index[name]
        if step is None:  # W&B rows: the value itself says which step it belongs to
            guess = value - k / 16.0
            step = int(round(guess)) if abs(guess - round(guess)) < 1e-6 else None
        if step is None or not 1 <= step <= self.results or float(value) != metric_value(step, k):
            self.bad_values += 1
            return
        self.seen[run].add((name, step))

    def done(self, started: float) -> TrackerCheck:
        c = self.check
        c.runs = sum(1 for pairs in self.seen.values() if pairs)
        c.valid = sum(len(pairs) for pairs in self.seen.values())
        if self.bad_values:
            c.problems.append(f"{self.bad_values} values with a wrong step or value")
        c.seconds = time.perf_counter() - started
        return c


# ------------------------------------------------------------------------------------------------ MLflow
def check_mlflow(tracking_uri: str, trials: int, results: int, num_metrics: int) -> TrackerCheck:
    started = time.perf_counter()
    tally = _Tally("mlflow", trials, results, num_metrics)
    path = tracking_uri.removeprefix("sqlite:///")
    if tracking_uri.startswith("sqlite:///") and not os.path.exists(path):
        tally.check.problems.append(f"no store: {path} does not exist")
        return tally.done(started)
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
            if tally.metric_of(key) is None:
                continue
            for m in client.get_metric_history(run_id, key):
                tally.add(run_id, key, int(m.step), float(m.value))
    return tally.done(started)


# ------------------------------------------------------------------------------------------------ TensorBoard
def check_tensorboard(root: str, trials: int, results: int, num_metrics: int) -> TrackerCheck:
    """Every directory under ``root`` holding ``events.out.tfevents.*`` files is one run."""
    started = time.perf_counter()
    tally = _Tally("tensorboard", trials, results, num_metrics)
    from tensorboard.backend.event_processing import event_accumulator as ea

    run_dirs = sorted(
        {os.path.dirname(p) for p in glob.glob(os.path.join(root, "**", "events.out.tfevents.*"), recursive=True)}
    )
    for run_dir in run_dirs:
        acc = ea.EventAccumulator(run_dir, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            if tally.metric_of(tag) is None:
                continue
            for event in acc.Scalars(tag):
                tally.add(run_dir, tag, int(event.step), float(event.value))
    return tally.done(started)


# ------------------------------------------------------------------------------------------------ W&B offline
def _wait_complete(path: str, timeout: float) -> bool:
    """A run file is complete when it parses, holds an exit record and stopped growing (W&B's service
    writes it asynchronously, after ``finish()`` returned)."""
    try:
        wait_until_complete(path, timeout)
        return True
    except TimeoutError:
        return False


def check_wandb(root: str, trials: int, results: int, num_metrics: int, wait: float = 20.0) -> TrackerCheck:
    started = time.perf_counter()
    tally = _Tally("wandb", trials, results, num_metrics)
    files = wandb_run_files(root)
    for path in files:
        if not _wait_complete(path, wait):
            tally.check.problems.append(f"{os.path.basename(path)}: no exit record (run not finished)")
        run_id = ""
        try:
            for record in iter_records(path):
                kind = record.WhichOneof("record_type")
                if kind == "run":
                    run_id = record.run.run_id
                elif kind == "history":
                    for item in record.history.item:
                        key = item.key or "/".join(item.nested_key)
                        if tally.metric_of(key) is None:
                            continue
                        try:
                            value = json.loads(item.value_json)
                        except ValueError:
                            continue
                        if isinstance(value, (int, float)) and not isinstance(value, bool):
                            tally.add(run_id or path, key, None, float(value))
        except CorruptLog as exc:
            tally.check.problems.append(str(exc))
    return tally.done(started)


# ------------------------------------------------------------------------------------------------ all
def check_all(trackers: Iterable[str], root: str, trials: int, results: int, num_metrics: int) -> list[TrackerCheck]:
    """Check each tracker's store of the configuration that wrote under ``root`` (layout: benchmarks.configs)."""
    from benchmarks import configs

    checks = []
    for tracker in trackers:
        try:
            if tracker == "mlflow":
                checks.append(check_mlflow(configs.mlflow_uri(root), trials, results, num_metrics))
            elif tracker == "tensorboard":
                checks.append(check_tensorboard(root, trials, results, num_metrics))
            elif tracker == "wandb":
                checks.append(check_wandb(configs.wandb_dir(root), trials, results, num_metrics))
            else:
                raise ValueError(f"unknown tracker {tracker!r}")
        except Exception as exc:  # a reader that fails is a failed check, not a crashed benchmark
            check = TrackerCheck(tracker, expected=trials * results * num_metrics, expected_runs=trials)
            check.problems.append(f"reading back failed: {type(exc).__name__}: {exc}")
            checks.append(check)
    return checks
