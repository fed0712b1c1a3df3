"""What an MLflow store holds for one Tune experiment, read with ``MlflowClient`` (``trackbridge demo``)."""

from __future__ import annotations

from typing import Any

from trackbridge.stored_summary import STATUS_OF_WORD, StoredSummary, count_points
from trackbridge_mlflow import store


def _artifacts(client: Any, run_id: str, path: str | None = None) -> int:
    found = 0
    for item in client.list_artifacts(run_id, path):
        found += _artifacts(client, run_id, item.path) if item.is_dir else 1
    return found


def summarize(client: Any, mlflow_experiment: str, tune_experiment: str) -> StoredSummary:
    """The trial runs (tagged with ``tune_experiment``) in the MLflow experiment ``mlflow_experiment``."""
    summary = StoredSummary()
    experiment = client.get_experiment_by_name(mlflow_experiment)
    if experiment is None:
        return summary
    for run in store.all_runs(client, experiment.experiment_id):
        tags = run.data.tags
        if tags.get(store.TAG_ROLE) != store.ROLE_TRIAL or tags.get(store.TAG_EXPERIMENT_NAME) != tune_experiment:
            continue
        summary.runs += 1
        run_id = run.info.run_id
        history = ((key, len(client.get_metric_history(run_id, key))) for key in run.data.metrics)
        summary.metric_points += count_points(history)
        summary.params += len(run.data.params)
        summary.artifacts = (summary.artifacts or 0) + _artifacts(client, run_id)
        summary.statuses[STATUS_OF_WORD.get(run.info.status, run.info.status.lower())] += 1
    return summary
