"""Talking to the MLflow tracking store: the client, the experiment, finding a trial's existing run.

Only ``MlflowClient`` with explicit ids is used, never the fluent ``mlflow.start_run`` stack: many trials
are live at once on one thread, and the fluent API keeps one process-global active run.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

#: Run tags TrackBridge sets and later searches by.
TAG_TRIAL_ID = "trial_id"
TAG_TRIAL_NAME = "trial_name"
TAG_EXPERIMENT_NAME = "experiment_name"
TAG_ROLE = "trackbridge.role"
ROLE_TRIAL = "trial"
ROLE_PARENT = "parent"
TAG_PARENT_RUN_ID = "mlflow.parentRunId"

_SAFE_FILTER_VALUE = re.compile(r"^[\w.\-]*$")


class TokenClient:
    """An ``MlflowClient`` whose every call sends ``tracking_token`` as ``Authorization: Bearer <token>``.

    The token is bound to the calling thread for the duration of each call only (read by
    ``bearer_token.BearerTokenProvider``), so it belongs to this client: it is never put into the process environment, where every other
    plugin, library and child process would see it, and two clients with different tokens (two plugins, two
    servers) each send their own, also from one thread. Attributes that are not methods pass through.
    """

    def __init__(self, client: Any, token: str) -> None:
        self._client = client
        self._token = token

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        token = self._token
        from trackbridge_mlflow import bearer_token  # imports mlflow: only once a client exists

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with bearer_token.bound(token):
                return attr(*args, **kwargs)

        return call

    def __repr__(self) -> str:
        return f"TokenClient({self._client!r}, token=***)"


def _warn_if_environment_wins(log: logging.Logger) -> None:
    """MLflow sets ``Authorization`` from its own environment variables after the header providers ran."""
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        other = "MLFLOW_TRACKING_TOKEN"
    elif os.environ.get("MLFLOW_TRACKING_USERNAME") and os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        other = "MLFLOW_TRACKING_USERNAME/PASSWORD"
    else:
        return
    log.warning(
        "trackbridge: mlflow: tracking_token is given, but %s is set in the environment too; MLflow sends the "
        "credentials from the environment, which take precedence over the option",
        other,
    )


def trial_tags(trial_id: str, trial_name: str, tune_experiment: str, parent_run_id: str | None) -> dict[str, str]:
    """The tags TrackBridge puts on a trial's run (and later finds it by)."""
    tags = {
        TAG_TRIAL_ID: trial_id,
        TAG_TRIAL_NAME: trial_name,
        TAG_EXPERIMENT_NAME: tune_experiment,
        TAG_ROLE: ROLE_TRIAL,
    }
    if parent_run_id is not None:
        tags[TAG_PARENT_RUN_ID] = parent_run_id
    return tags


def resolve_tracking_uri(option: str | None) -> str:
    """The option, else ``$MLFLOW_TRACKING_URI``, else MLflow's own default (``sqlite:///mlflow.db``)."""
    if option:
        return option
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    import mlflow

    return mlflow.get_tracking_uri()


def destination(tracking_uri: str, experiment_name: str | None) -> str:
    """Where runs go, as one string: a relative SQLite or file path resolved against the current directory."""
    for scheme in ("sqlite:///", "file://"):
        rest = tracking_uri.removeprefix(scheme)
        if tracking_uri.startswith(scheme) and not rest.startswith("/"):
            tracking_uri = scheme + os.path.abspath(rest)
    if "://" not in tracking_uri and (tracking_uri.startswith((".", "~")) or os.sep in tracking_uri):
        tracking_uri = os.path.abspath(os.path.expanduser(tracking_uri))  # a path (not "databricks")
    return f"{tracking_uri}#{experiment_name or ''}"


def make_client(
    tracking_uri: str, registry_uri: str | None, token: str | None = None, log: logging.Logger | None = None
) -> Any:
    """An ``MlflowClient`` whose store is already open (for SQLite: schema created and migrated); with a
    ``token``, wrapped in a ``TokenClient`` that sends it with every request.

    Opening the store is the slow part (~2 s for a fresh SQLite file); touching it here, in
    ``trackbridge_setup``, moves that cost off the first trial's start.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
    _ = client._tracking_client.store  # noqa: SLF001 - force the (lazy) store to open now
    if not token:
        return client
    _warn_if_environment_wins(log or logging.getLogger("trackbridge.mlflow"))
    return TokenClient(client, token)


def system_tags(log: logging.Logger) -> dict[str, str]:
    """MLflow's own run-context tags (``mlflow.user``, ``mlflow.source.name``, ``mlflow.source.type``,
    git commit when available...), as ``mlflow.start_run`` would set them. Resolved once per fit."""
    from mlflow.tracking.context.registry import resolve_tags

    try:
        return {str(k): str(v) for k, v in resolve_tags().items()}
    except Exception as exc:  # a broken context provider must not cost us the runs
        log.warning("trackbridge: mlflow: could not resolve MLflow's system tags: %s", exc)
        return {}


def _error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    return str(code) if code is not None else None


def get_or_create_experiment(client: Any, name: str, artifact_location: str | None, log: logging.Logger) -> str:
    """The id of the experiment ``name``, created when missing.

    - Another process may create it between our lookup and our create (parallel ``Tuner.fit`` calls on
      one server): ``RESOURCE_ALREADY_EXISTS`` means "look it up again".
    - A *deleted* experiment still owns its name until ``mlflow gc`` purges it, so creating a new one
      fails; we restore it (its deleted runs stay deleted) and say so, rather than losing the whole run.
    """
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(client.create_experiment(name, artifact_location=artifact_location))
        except MlflowException as exc:
            if _error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        log.warning(
            "trackbridge: mlflow: experiment %r (id %s) was deleted; restoring it to log this run. "
            "To start afresh, purge it first (`mlflow gc --experiment-ids %s`) or set experiment_name=.",
            name,
            experiment.experiment_id,
            experiment.experiment_id,
        )
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def _newest(runs: list[Any]) -> Any | None:
    if not runs:
        return None
    return max(runs, key=lambda r: r.info.start_time or 0)


def find_trial_run(client: Any, experiment_id: str, trial_id: str, tune_experiment: str) -> Any | None:
    """The existing run of ``trial_id`` in the experiment (by its ``trial_id`` tag), or None.

    When several match (the same trial id reused by another Tune experiment logging into the same MLflow
    experiment) the one tagged with this Tune experiment's name wins, then the newest.
    """
    if _SAFE_FILTER_VALUE.match(trial_id):
        runs = client.search_runs([experiment_id], filter_string=f"tags.{TAG_TRIAL_ID} = '{trial_id}'")
    else:  # a value we cannot quote safely: filter here instead
        runs = [r for r in all_runs(client, experiment_id) if r.data.tags.get(TAG_TRIAL_ID) == trial_id]
    runs = [r for r in runs if r.data.tags.get(TAG_ROLE, ROLE_TRIAL) == ROLE_TRIAL]
    same = [r for r in runs if r.data.tags.get(TAG_EXPERIMENT_NAME) == tune_experiment]
    return _newest(same or runs)


def find_parent_run(client: Any, experiment_id: str, tune_experiment: str) -> Any | None:
    """The parent run a previous ``fit`` of the same Tune experiment created, or None."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_ROLE}` = '{ROLE_PARENT}'")
    return _newest([r for r in runs if r.data.tags.get(TAG_EXPERIMENT_NAME) == tune_experiment])


def all_runs(client: Any, experiment_id: str) -> list[Any]:
    """Every run of the MLflow experiment, page by page."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return runs


def run_params(run: Any) -> Mapping[str, str]:
    return dict(run.data.params or {})
