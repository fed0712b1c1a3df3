"""The tests read W&B's offline run files through the public reader, ``trackbridge_wandb_reader``."""

from trackbridge_wandb_reader import (  # noqa: F401
    CorruptLog,
    OfflineRun,
    artifact_manifest,
    iter_records,
    read_run,
    read_runs,
    run_files,
    runs_by_id,
    wait_until_complete,
)
