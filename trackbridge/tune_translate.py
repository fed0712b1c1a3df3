"""Ray Tune's objects in, TrackBridge's plain values out: experiment and trial info, metrics, error texts.

Everything here reads Tune's objects defensively (attributes differ across Ray versions) and never blocks:
it runs on Tune's driver thread.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ray.tune.result import AUTO_RESULT_KEYS

from trackbridge.events import ExperimentInfo, TrialInfo
from trackbridge.secrets import redact
from trackbridge.values import flatten, plain_config

#: The key under which Ray Train's ``TuneReportCallback`` reports the path of a checkpoint Train persisted
#: (``ray.tune.integration.ray_train.CHECKPOINT_PATH_KEY``): a checkpoint event, never a metric.
TRAIN_CHECKPOINT_KEY = "checkpoint_path"
#: The key under which Tune names, in a result, the directory of the checkpoint reported with it.
CHECKPOINT_DIR_KEY = "checkpoint_dir_name"
#: Result fields Tune fills in itself; not metrics unless ``include_auto_metrics=True``.
AUTO_METRICS: frozenset[str] = frozenset(AUTO_RESULT_KEYS) | {
    "trial_id",
    "experiment_tag",
    "done",
    "should_checkpoint",
    CHECKPOINT_DIR_KEY,
    "date",
    "timestamp",
    "pid",
    "hostname",
    "node_ip",
    "training_iteration",
    TRAIN_CHECKPOINT_KEY,
}
#: Never metrics: the config is logged as the run's parameters, the step is the x-axis, Train's checkpoint.
NEVER_METRICS = frozenset({"config", "training_iteration", TRAIN_CHECKPOINT_KEY})
STEP_KEY = "training_iteration"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def safe(getter: Callable[[], Any]) -> Any:
    """``getter()``, or None when Tune's object lacks what it reads."""
    try:
        return getter()
    except Exception:
        return None


def experiment_info(trial: Any, resumed: bool) -> ExperimentInfo:
    name = safe(lambda: trial.experiment_dir_name) or safe(lambda: trial.experiment_name) or "tune"
    return ExperimentInfo(
        name=str(name),
        path=safe(lambda: trial.remote_experiment_path),
        local_path=safe(lambda: trial.local_experiment_path),
        resumed=resumed,
        filesystem=remote_filesystem(trial),
    )


def remote_filesystem(trial: Any) -> Any:
    """Tune's storage filesystem of the trial, or None when it is the local file system."""
    fs = safe(lambda: trial.storage.storage_filesystem)
    if fs is None or getattr(fs, "type_name", "local") == "local":
        return None
    return fs


def starting_checkpoint(trial: Any) -> tuple[str | None, int | None]:
    """The checkpoint a (re)starting trial continues from, and its step: the trial's own latest, or after a
    PBT exploit the donor trial's (``Trial.latest_checkpoint_result``, which PBT sets to the donor's)."""
    latest = safe(lambda: trial.latest_checkpoint_result)
    path = safe(lambda: latest.checkpoint.path) if latest is not None else None
    step = safe(lambda: latest.metrics.get(STEP_KEY)) if latest is not None else None
    return (str(path) if path else None), (step if isinstance(step, int) and not isinstance(step, bool) else None)


def trial_info(trial: Any, experiment: ExperimentInfo, redact_extra: Sequence[str], redact_enabled: bool) -> TrialInfo:
    return build_trial_info(
        trial_id=str(trial.trial_id),
        trial_name=str(trial),
        config=dict(getattr(trial, "config", None) or {}),
        experiment=experiment,
        local_path=safe(lambda: trial.local_path),
        path=safe(lambda: trial.path),
        experiment_tag=str(getattr(trial, "experiment_tag", "") or ""),
        filesystem=remote_filesystem(trial),
        redact_extra=redact_extra,
        redact_enabled=redact_enabled,
    )


def build_trial_info(
    *,
    trial_id: str,
    trial_name: str,
    config: Mapping[str, Any],
    experiment: ExperimentInfo,
    local_path: str | None,
    path: str | None,
    experiment_tag: str,
    filesystem: Any,
    redact_extra: Sequence[str],
    redact_enabled: bool,
) -> TrialInfo:
    """The ``TrialInfo`` of a trial: its config redacted, made plain and flattened (live and in a replay)."""
    nested = plain_config(redact(dict(config), redact_extra, enabled=redact_enabled))
    return TrialInfo(
        trial_id=trial_id,
        trial_name=trial_name,
        experiment_name=experiment.name,
        config=flatten(nested),
        nested_config=nested,
        local_path=local_path,
        path=path,
        experiment_tag=experiment_tag,
        filesystem=filesystem,
    )


def result_step(result: Mapping[str, Any]) -> int | None:
    """Tune's ``training_iteration`` of a result (None when it is missing or not an int)."""
    step = result.get(STEP_KEY)
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _excluded(key: str, excludes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + "/") or fnmatch.fnmatchcase(key, p) for p in excludes)


def result_metrics(result: Mapping[str, Any], *, include_auto: bool, excludes: Sequence[str]) -> dict[str, Any]:
    """A result flattened with ``/``, without Tune's auto-filled fields (unless asked) and the excludes."""
    dropped = NEVER_METRICS if include_auto else AUTO_METRICS
    metrics = flatten({k: v for k, v in result.items() if k not in dropped})
    if excludes:
        metrics = {k: v for k, v in metrics.items() if not _excluded(k, excludes)}
    return metrics


def error_text(trial: Any) -> str | None:
    """The failed trial's error: Tune's local error file (a file Tune itself wrote), else ``get_error()``."""
    path = safe(lambda: trial.error_file)
    if path and os.path.exists(path):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = clean_error(f.read())
            if text:
                return text
        except OSError:
            pass
    return safe(lambda: str(trial.get_error())) or "trial failed"


def clean_error(text: str) -> str | None:
    """An error file's text without terminal colours, its last 8000 characters (None when empty)."""
    text = _ANSI.sub("", text.strip())
    return text[-8000:] if text else None
