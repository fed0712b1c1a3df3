"""The Aim repo side of the plugin: where the repo is, opening and finding a trial's run, and indexing.

Aim 3.29 reads runs through an index (``aim.Repo(...).iter_runs()``, ``query_runs``, the UI) that only ``aim
up`` and ``aim storage reindex`` update; a run written by the SDK alone stays invisible to every reader until
then. ``index_run`` adds one run to the index the way ``aim up`` does (``RepoIndexManager.index``), through a
``Repo`` object of its own that is dropped right after, so the index database is not held open between runs
(a running ``aim up`` indexes the same repo).

This module imports Aim; the plugin imports it only inside its hooks.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from aim import Repo, Run
from aim.sdk.index_manager import RepoIndexManager

log = logging.getLogger("trackbridge.aim")

#: The run parameter holding the Tune trial id (the name Ray's AimLoggerCallback uses too).
TRIAL_ID_KEY = "trial_id"


def default_repo(experiment_path: str | None, experiment_is_local: bool) -> str:
    """The experiment's folder when Tune keeps it on this machine (written in place, never a folder Tune copies
    while it is written); else Aim's default: the nearest ``.aim`` above the current directory, or the current
    directory."""
    if experiment_path and experiment_is_local:
        return os.path.abspath(experiment_path)
    return str(Repo.default_repo_path())


def open_run(repo: str, experiment: str, run_hash: str | None, run_kwargs: dict[str, Any]) -> Any:
    """A new run (``run_hash`` None) or an existing run reopened for writing."""
    return Run(run_hash=run_hash, repo=repo, experiment=experiment, **run_kwargs)


def find_trial_runs(repo: str, experiment: str) -> dict[str, str]:
    """trial id -> run hash of the runs of ``experiment`` in ``repo`` that carry a trial id (the newest run per
    trial when there are several). Reads the index: a run this plugin indexed at its start is found."""
    if not Repo.is_remote_path(repo) and not Repo.exists(repo):
        return {}
    found: dict[str, tuple[float, str]] = {}
    query = f"run.experiment == {experiment!r}"
    for item in Repo.from_path(repo).query_runs(query, report_mode=0).iter_runs():
        run = item.run
        trial_id = run.get(TRIAL_ID_KEY)
        if not isinstance(trial_id, str):
            continue
        created = run.creation_time or 0.0
        if trial_id not in found or created > found[trial_id][0]:
            found[trial_id] = (created, run.hash)
    return {trial_id: run_hash for trial_id, (_, run_hash) in found.items()}


def index_run(repo: str, run_hash: str, attempts: int = 3, pause: float = 0.2) -> None:
    """Add ``run_hash`` to the index of the local repo ``repo`` (see the module docstring). Tried ``attempts``
    times: another process may hold the index for a moment (``aim up`` indexing); the last error is raised."""
    for attempt in range(attempts):
        index_repo = Repo(repo)  # not Repo.from_path: a pooled Repo would keep the index database open
        try:
            # ``index`` is what ``aim up`` and ``aim storage reindex`` call per run. It logs and skips a run it
            # cannot read (its own "corrupted run" warning); that run is then indexed by the next ``aim up``.
            RepoIndexManager(index_repo).index(run_hash)
            return
        except Exception:
            if attempt + 1 == attempts:
                raise
            time.sleep(pause)
        finally:
            index_repo.close()
