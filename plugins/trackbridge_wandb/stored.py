"""What W&B's offline run files hold for one Tune experiment, read with ``trackbridge_wandb_reader``
(``trackbridge demo``). Online runs live on W&B's server: not read here."""

from __future__ import annotations

import os

from trackbridge.stored_summary import StoredSummary, count_leaves, is_own_metric
from trackbridge_wandb_reader.reader import OfflineRun, read_runs

#: ``run.finish`` exit codes back to the outcome (see ``plugin.EXIT_CODES``).
_STATUS_OF_EXIT = {0: "completed", 1: "failed", 2: "unfinished"}


def summarize(wandb_dir: str, group: str) -> StoredSummary:
    """The offline runs under ``wandb_dir`` (the ``wandb`` folder) in ``group``: one run per run id (a
    resumed run adds a file with the same id), its last file telling how it ended."""
    summary = StoredSummary()
    last_file: dict[str, OfflineRun] = {}
    for run in read_runs(wandb_dir) if os.path.isdir(wandb_dir) else []:
        if run.group != group:
            continue
        last_file[run.run_id] = run
        for row in run.history:
            summary.metric_points += sum(
                1 for key, value in row.items() if is_own_metric(key) and isinstance(value, int | float)
            )
        summary.artifacts = (summary.artifacts or 0) + len(run.artifacts)
    summary.runs = len(last_file)
    for run in last_file.values():
        summary.params += count_leaves(run.config)
        ended = run.summary.get("tune/status")
        code = run.exit_code
        summary.statuses[str(ended) if ended else _STATUS_OF_EXIT.get(code, "unfinished")] += 1
    return summary
