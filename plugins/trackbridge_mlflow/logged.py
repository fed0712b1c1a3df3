"""What a trial sends, as MLflow stores it: numbers as metric points (results and values logged inside the
trial alike), and files logged inside the trial as artifacts under ``logged/``.

MLflow metrics are numbers, each at a step: a result's points are at its ``training_iteration``, an in-trial
log's at its own step (one metric history per key either way). Everything that is not a number is skipped
with one warning per key, and counted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from trackbridge import SCALAR, LoggedFile, classify, to_float
from trackbridge_mlflow.limits import KeyMap

#: The artifact directory of files logged inside a trial (``trackbridge.log_artifact``).
LOGGED_DIR = "logged"
#: The metric marking a PBT exploit: 1 at the step the trial continues from (the donor checkpoint's step), the
#: same name in every first-party plugin. Its history lists the trial's exploit points.
EXPLOIT_METRIC = "trackbridge/exploit"


def metric_points(
    values: Mapping[str, Any],
    keys: KeyMap,
    step: int,
    timestamp: float,
    metric_cls: type,
    warn: Callable[[str, str], None],
) -> list[Any]:
    """The numbers among ``values`` as ``Metric(name, value, millis, step)``, names sanitised by the run's
    ``KeyMap``; the rest skipped (one warning per key)."""
    millis = int(timestamp * 1000)
    out = []
    for key, value in values.items():
        if classify(value) != SCALAR:
            warn(
                f"value:{key}",
                f"metric {key!r} is not a number ({type(value).__name__}); MLflow metrics are numbers, "
                "so it is not logged",
            )
            continue
        name = keys(key)
        if name != key:
            warn(f"name:{key}", f"metric {key!r} is logged as {name!r} (MLflow's naming rules)")
        out.append(metric_cls(name, to_float(value), millis, int(step)))
    return out


def artifact_place(file: LoggedFile) -> tuple[str, str]:
    """(artifact directory, file name) for a logged file: ``logged/`` plus the directories in its name.

    The name is the one the trial chose (``log_artifact(path, name=...)``), so it is reduced to plain path
    parts: no absolute path, no ``..``, never outside ``logged/``.
    """
    parts = [p for p in PurePosixPath(file.name.replace("\\", "/")).parts if p not in ("/", ".", "..")]
    if not parts:
        parts = [os.path.basename(file.path.rstrip("/\\")) or "file"]
    return "/".join([LOGGED_DIR, *parts[:-1]]), parts[-1]


def log_files(client: Any, run_id: str, files: Sequence[LoggedFile]) -> None:
    """Each file with ``log_artifact`` (a directory with ``log_artifacts``) under ``logged/<name>``; a file whose
    name is not its own basename is copied to a temporary directory under that name first."""
    for file in files:
        directory, name = artifact_place(file)
        if os.path.isdir(file.path):
            client.log_artifacts(run_id, file.path, artifact_path=f"{directory}/{name}")
        elif name == os.path.basename(file.path):
            client.log_artifact(run_id, file.path, artifact_path=directory)
        else:
            with tempfile.TemporaryDirectory(prefix="trackbridge-logged-") as scratch:
                renamed = os.path.join(scratch, name)
                shutil.copyfile(file.path, renamed)
                client.log_artifact(run_id, renamed, artifact_path=directory)
