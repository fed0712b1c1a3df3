"""The Aim plugin's declared options: validated on the user's thread by ``PluginOptions.parse`` (unknown names
with a "did you mean", types, checks) without importing Aim, and stored as plain, picklable values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trackbridge import PluginOptions, option


def is_remote_repo(repo: str | None) -> bool:
    """An ``aim://host:port`` repo (an ``aim server``), as opposed to a directory."""
    return bool(repo) and str(repo).startswith("aim://")


def _repo(value: Any) -> Any:
    """A path-like as an absolute directory (so a restored run finds the same repo); ``aim://`` kept."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or is_remote_repo(value):
        return value
    if "://" in value:
        raise ValueError(f"repo must be a local directory or aim://host:port (an Aim server), got {value!r}")
    path = os.path.abspath(os.path.expanduser(value))
    # Aim's own rule: a path ending in .aim is the repo's storage folder; its parent is the repo.
    return os.path.dirname(path) if os.path.basename(path) == ".aim" else path


def _artifacts_uri(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and "://" not in value:
        return "file://" + os.path.abspath(os.path.expanduser(value))
    return value


def _check_artifacts_scheme(value: str | None) -> None:
    if value is not None and not value.startswith(("file://", "s3://")):
        raise ValueError(f"Aim stores artifacts on file:// or s3:// URIs only, got {value!r}")


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, set, frozenset)) else value


def _check_strings(value: list[Any] | None) -> None:
    if value is not None and not all(isinstance(v, str) for v in value):
        raise TypeError("must be a list of strings")


def _check_context(value: Mapping[str, Any]) -> None:
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, (str, int, float, bool)):
            raise TypeError(f"context must map names to str, int, float or bool values; got {key!r}: {item!r}")


def _positive_or_none(value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"must be a positive number of seconds or None, got {value}")


@dataclass(frozen=True)
class AimOptions(PluginOptions):
    """What ``plugins={"aim": {...}}`` may set (each option's ``doc`` says what it does)."""

    repo: str | None = option(
        None,
        doc="the Aim repo: a directory (its runs go to <repo>/.aim; a relative path is resolved when the callback "
        "is built) or aim://host:port for an Aim server; default: the experiment's folder when Tune stores it on "
        "this machine, else Aim's own default (the nearest .aim above the current directory, else the current "
        "directory)",
        convert=_repo,
    )
    experiment_name: str | None = option(
        None, doc="the Aim experiment of every run; default: the Tune experiment's name"
    )
    tags: list[str] | None = option(None, doc="tags added to every run", convert=_as_list, check=_check_strings)
    context: Mapping[str, Any] = option(
        default_factory=dict,
        doc="added to the Aim context of every tracked value (e.g. {'subset': 'train'}); a result's own "
        "context/<name> keys are merged in, as Ray's AimLoggerCallback does with a result's 'context'",
        check=_check_context,
    )
    metrics: list[str] | None = option(
        None,
        doc="track only these metric keys (flattened with '/'); None: every metric (TrackBridgeCallback's "
        "excludes= applies to all plugins)",
        convert=_as_list,
        check=_check_strings,
    )
    save_checkpoints: bool = option(False, doc="store each checkpoint's files as run artifacts checkpoints/<step>/")
    artifacts_uri: str | None = option(
        None,
        doc="where artifacts go (file:// or s3://; a plain path becomes file://); default: "
        "file://<repo>/aim-artifacts for a local repo (required with an aim:// repo)",
        convert=_artifacts_uri,
        check=_check_artifacts_scheme,
    )
    index_runs: bool = option(
        True,
        doc="update the repo's index when a run starts and ends, so aim.Repo readers and a running 'aim up' "
        "see it at once (Aim 3.29 reads runs through an index that otherwise only 'aim up' or 'aim storage "
        "reindex' updates); local repos only",
    )
    system_tracking_interval: float | None = option(
        None,
        doc="seconds between Aim's system metrics (CPU, memory) of the process writing the runs; None: off, "
        "because every run of an experiment lives in the driver and would record the driver's usage",
        convert=lambda v: float(v) if isinstance(v, int) and not isinstance(v, bool) else v,
        check=_positive_or_none,
    )
    capture_terminal_logs: bool = option(
        False, doc="Aim's terminal capture; off, because it would copy the driver's whole output into every run"
    )
    log_system_params: bool = option(False, doc="Aim's record of packages, environment variables and git info")

    def __post_init__(self) -> None:
        if self.save_checkpoints and is_remote_repo(self.repo) and self.artifacts_uri is None:
            raise ValueError("save_checkpoints with an aim:// repo needs artifacts_uri= (file:// or s3://)")
