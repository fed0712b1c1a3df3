"""What an Aim repo holds for one Tune experiment, read with ``aim.Repo`` (as ``aim up`` reads it), for
``trackbridge demo``."""

from __future__ import annotations

from trackbridge.stored_summary import STATUS_OF_WORD, StoredSummary, count_leaves, is_own_metric


def summarize(repo_path: str, experiment: str) -> StoredSummary:
    """The runs of Aim experiment ``experiment`` that carry a trial id."""
    from aim import Repo

    summary = StoredSummary()
    repo = Repo(repo_path)  # a reader of its own, not the writing SDK's per-process pool
    try:
        for run in repo.iter_runs():
            if run.experiment != experiment or run.get("trial_id") is None:
                continue
            summary.runs += 1
            for sequence in run.metrics():
                if is_own_metric(sequence.name):
                    steps, _ = sequence.data.items_list()
                    summary.metric_points += len(steps)
            summary.params += count_leaves(run.get("hparams") or {})
            summary.artifacts = (summary.artifacts or 0) + len(run.artifacts)
            word = str(run.get("status") or "RUNNING")
            summary.statuses[STATUS_OF_WORD.get(word, word.lower())] += 1
    finally:
        repo.close()
    return summary
