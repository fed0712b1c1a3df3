"""Read W&B offline runs (``run-<id>.wandb`` files) without the network: config, history rows, summary,
artifacts, exit code. See ``trackbridge_wandb_reader.reader``; ``python -m trackbridge_wandb_reader DIR``
prints one line per run.

Needs ``wandb`` (for its record protobufs), not TrackBridge: ``pip install "trackbridge[wandb]"``.
"""

from trackbridge_wandb_reader.reader import (
    CorruptLog,
    OfflineRun,
    artifact_manifest,
    iter_payloads,
    iter_records,
    read_run,
    read_runs,
    run_files,
    runs_by_id,
    wait_until_complete,
)

__all__ = [
    "CorruptLog",
    "OfflineRun",
    "artifact_manifest",
    "iter_payloads",
    "iter_records",
    "read_run",
    "read_runs",
    "run_files",
    "runs_by_id",
    "wait_until_complete",
]
