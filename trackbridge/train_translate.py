"""Ray Train (V2) objects in, TrackBridge's plain values out: the run as an experiment with one trial, the
reported metrics of each rank, the step, the end status and its error text.

One Train run (one ``fit()``) is one experiment named after ``RunConfig.name`` holding one trial whose id is
Train's run id, so each tracker gets one run per ``fit()``. Everything here reads Ray's objects defensively
(the controller-side objects are DeveloperAPIs that change across Ray versions) and never blocks: it runs on
the Train controller's event loop.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from trackbridge.events import ExperimentInfo, TrialInfo, TrialStatus
from trackbridge.secrets import redact
from trackbridge.values import flatten, plain_config

#: A reported key that, when it holds an int, is the step of the report (the same key as Tune's, so a
#: Train run reporting it lines up with Tune trials); otherwise the step is the report count 1, 2, 3, ...
STEP_KEY = "training_iteration"
#: Error texts longer than this keep their end (where the traceback's last frame and message are).
MAX_ERROR_CHARS = 8000
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _attr(obj: Any, *names: str) -> Any:
    """``obj.a.b...``, or None when a link is missing (Ray's attributes differ across versions)."""
    for name in names:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def remote_or_none(filesystem: Any) -> Any:
    """The filesystem when it is not the local one, else None (TrackBridge's convention for local paths)."""
    if filesystem is None or getattr(filesystem, "type_name", "local") == "local":
        return None
    return filesystem


def storage_location(run_config: Any) -> tuple[str | None, Any]:
    """``(path, filesystem)`` of the run's directory, resolved the way Train resolves ``RunConfig``: a given
    ``storage_filesystem`` takes ``storage_path`` as a path on it, else pyarrow resolves the URI or path.
    ``filesystem`` is None when the directory is local. ``(None, None)`` when it cannot be resolved."""
    storage_path = _attr(run_config, "storage_path")
    name = _attr(run_config, "name")
    if storage_path is None or name is None:
        return None, None
    filesystem = _attr(run_config, "storage_filesystem")
    path = str(storage_path)
    if filesystem is None:
        if "://" not in path:
            return os.path.join(os.path.abspath(os.path.expanduser(path)), str(name)), None
        try:
            import pyarrow.fs as pafs

            filesystem, path = pafs.FileSystem.from_uri(path)
        except Exception:
            return None, None
    remote = remote_or_none(filesystem)
    joined = posixpath.join(path, str(name))
    return (joined if remote is not None else os.path.abspath(joined)), remote


def experiment_info(run_context: Any) -> ExperimentInfo:
    """The Train run as an experiment: ``RunConfig.name`` and the run's storage directory."""
    run_config = _attr(run_context, "run_config")
    path, filesystem = storage_location(run_config)
    return ExperimentInfo(
        name=str(_attr(run_config, "name") or "ray_train_run"),
        path=path,
        local_path=path if filesystem is None else None,
        filesystem=filesystem,
    )


def trial_info(
    run_context: Any, experiment: ExperimentInfo, redact_extra: Sequence[str], redact_enabled: bool
) -> TrialInfo:
    """The Train run as the experiment's one trial: id = Train's run id, config = ``train_loop_config``."""
    run_id = str(_attr(run_context, "run_id") or experiment.name)
    raw = _attr(run_context, "train_loop_config")
    nested = plain_config(redact(dict(raw) if isinstance(raw, Mapping) else {}, redact_extra, enabled=redact_enabled))
    return TrialInfo(
        trial_id=run_id,
        trial_name=f"{experiment.name}_{run_id[:8]}",
        experiment_name=experiment.name,
        config=flatten(nested),
        nested_config=nested,
        local_path=experiment.local_path,
        path=experiment.path,
        filesystem=experiment.filesystem,
    )


def report_step(metrics_per_rank: Sequence[Mapping[str, Any]]) -> int | None:
    """Rank 0's ``training_iteration`` when it reported an int; None means "the next report count"."""
    step = metrics_per_rank[0].get(STEP_KEY) if metrics_per_rank else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _excluded(key: str, excludes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + "/") or fnmatch.fnmatchcase(key, p) for p in excludes)


def report_metrics(
    metrics_per_rank: Sequence[Mapping[str, Any]], *, rank_zero_only: bool, excludes: Sequence[str]
) -> dict[str, Any]:
    """One report's metrics, flattened with ``/``: rank 0's as they are, or with ``rank_zero_only=False``
    every rank's under ``rank_<n>/`` (``metrics_per_rank[n]`` is what rank n reported). The step key is the
    x-axis, never a metric; ``excludes`` apply to the final keys and to the keys as reported."""
    chosen = list(metrics_per_rank[:1]) if rank_zero_only else list(metrics_per_rank)
    out: dict[str, Any] = {}
    for rank, reported in enumerate(chosen):
        values = flatten({k: v for k, v in reported.items() if k != STEP_KEY})
        for key, value in values.items():
            if excludes and _excluded(key, excludes):
                continue
            full = key if rank_zero_only else f"rank_{rank}/{key}"
            if excludes and _excluded(full, excludes):
                continue
            out[full] = value
    return out


def end_status(result: Any) -> tuple[TrialStatus, str | None]:
    """COMPLETED for a run without error, else FAILED with the error's text (Train's ``WorkerGroupError``
    text holds each failing rank's traceback)."""
    error = _attr(result, "error")
    if error is None:
        return TrialStatus.COMPLETED, None
    text = _ANSI.sub("", str(error)).strip() or type(error).__name__
    return TrialStatus.FAILED, text[-MAX_ERROR_CHARS:]
