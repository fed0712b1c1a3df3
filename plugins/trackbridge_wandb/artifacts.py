"""W&B artifacts of a trial: its Tune checkpoints (type ``model``) and the files it logged itself with
``trackbridge.log_artifact`` (type ``trial-file``).

Both are staged the same way: ``add_dir``/``add_file`` hash and copy the files into W&B's staging directory on
the plugin's thread (policy "mutable"), so the source may disappear right after (Tune deleting an old
checkpoint, the driver's copy of a logged file being cleaned up); the upload itself runs in W&B's service. In
offline mode the artifact is recorded in the run's ``.wandb`` file and uploaded by ``wandb sync``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from trackbridge import CheckpointInfo, LoggedFile, TrialInfo
from trackbridge_wandb.convert import LOG_STEP_METRIC, STEP_METRIC, artifact_name, json_safe

#: Artifact types: Tune checkpoints, and files logged inside the trial.
CHECKPOINT_TYPE = "model"
FILES_TYPE = "trial-file"
#: Suffix of the artifact holding a trial's logged files: W&B refuses one name with two types, so the files
#: cannot share the checkpoints' artifact name.
FILES_SUFFIX = "-files"


def log_checkpoint(wandb: Any, run: Any, trial: TrialInfo, checkpoint: CheckpointInfo) -> None:
    """A new version of the artifact named after the trial, aliases ``latest`` and ``step_<N>``.

    A remote checkpoint is downloaded to a temporary directory, removed after the block; a deleted one raises
    ``CheckpointGone`` (a delivery failure, never a silent skip).
    """
    with checkpoint.local_copy() as directory:
        metadata = json_safe(checkpoint.metrics)
        if checkpoint.step is not None:
            metadata[STEP_METRIC] = checkpoint.step
        metadata["trial_id"] = trial.trial_id
        artifact = wandb.Artifact(name=artifact_name(trial.trial_name), type=CHECKPOINT_TYPE, metadata=metadata)
        artifact.add_dir(directory)
        aliases = ["latest"]
        if checkpoint.step is not None:
            aliases.append(f"step_{checkpoint.step}")
        run.log_artifact(artifact, aliases=aliases)


def log_files(wandb: Any, run: Any, trial: TrialInfo, step: int, files: Sequence[LoggedFile]) -> None:
    """The files of one ``trackbridge_trial_log`` call as one new version of ``<trial name>-files`` (type
    ``trial-file``, alias ``latest``), each file under its ``LoggedFile.name``; a directory keeps its tree."""
    name = artifact_name(trial.trial_name)[: 128 - len(FILES_SUFFIX)] + FILES_SUFFIX
    metadata = {"trial_id": trial.trial_id, LOG_STEP_METRIC: step, "files": [f.name for f in files]}
    artifact = wandb.Artifact(name=name, type=FILES_TYPE, metadata=metadata)
    for file in files:
        if os.path.isdir(file.path):
            artifact.add_dir(file.path, name=file.name)
        else:
            artifact.add_file(file.path, name=file.name)
    run.log_artifact(artifact, aliases=["latest"])
