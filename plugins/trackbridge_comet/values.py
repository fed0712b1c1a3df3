"""What a trial sends, as Comet stores it: metric numbers, parameter values, asset names, the error text.

Comet cuts names longer than 100 characters and values longer than 1000 (parameters, "others") with one
console warning per call, i.e. per result. The plugin makes them fit first, the same way every time, with one
TrackBridge warning per key (``WarnOnce``, counted). Everything that is not a number is skipped from metrics,
also with one warning per key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

from trackbridge import SCALAR, CheckpointInfo, LoggedFile, classify, to_float

#: Comet's limits (comet_ml.config: MAXIMAL_KEY_LENGTH, MAXIMAL_VALUE_LENGTH).
NAME_LIMIT = 100
VALUE_LIMIT = 1000
#: The metric marking a PBT exploit: 1 at the step the trial continues from (the same name in every plugin).
EXPLOIT_METRIC = "trackbridge/exploit"
#: The asset folder of files logged inside a trial (``trackbridge.log_artifact``).
LOGGED_DIR = "logged"

Warn = Callable[[str, str], None]


def fit_name(key: str, warn: Warn) -> str:
    """``key`` if Comet takes it whole; else its first characters + ``_`` + 8 hex of its SHA-1 (stable, unique)."""
    if len(key) <= NAME_LIMIT:
        return key
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    name = f"{key[: NAME_LIMIT - 9]}_{digest}"
    warn(
        f"name:{key}",
        f"name {key[:40]!r}... has {len(key)} characters, more than Comet's {NAME_LIMIT}: logged as {name!r}",
    )
    return name


def fit_value(value: Any, key: str, warn: Warn) -> Any:
    """A parameter / other value; a string (or the text of a list) longer than Comet's limit is cut with a marker."""
    text = value if isinstance(value, str) else str(value) if isinstance(value, (list, tuple)) else None
    if text is None or len(text) <= VALUE_LIMIT:
        return value
    marker = f"...[truncated: {len(text)} chars]"
    warn(f"long:{key}", f"value of {key!r} has {len(text)} characters, more than Comet's {VALUE_LIMIT}: truncated")
    return text[: VALUE_LIMIT - len(marker)] + marker


def tail(text: str, limit: int = VALUE_LIMIT) -> str:
    """The end of ``text`` within ``limit`` characters (the end of a traceback says what went wrong)."""
    if len(text) <= limit:
        return text
    marker = f"[truncated: {len(text)} chars]..."
    return marker + text[len(text) - (limit - len(marker)) :]


def metric_numbers(values: Mapping[str, Any], warn: Warn) -> dict[str, float]:
    """The numbers among ``values`` as floats (bools as 1.0/0.0; NaN and infinities kept), names fitted;
    everything else skipped with one warning per key."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if classify(value) != SCALAR:
            warn(
                f"skip:{key}",
                f"metric {key!r} is not a number ({type(value).__name__}); Comet metrics here are numbers, "
                "so it is not logged",
            )
            continue
        out[fit_name(key, warn)] = to_float(value)
    return out


def parameters(config: Mapping[str, Any], warn: Warn) -> dict[str, Any]:
    """A flattened config as Comet parameters: names and long values fitted, values as they are."""
    return {fit_name(key, warn): fit_value(value, key, warn) for key, value in config.items()}


def asset_name(file: LoggedFile) -> str:
    """``logged/<name>``: the name the trial chose, reduced to plain path parts (no absolute path, no ``..``)."""
    parts = [p for p in PurePosixPath(file.name.replace("\\", "/")).parts if p not in ("/", ".", "..")]
    if not parts:
        parts = [os.path.basename(file.path.rstrip("/\\")) or "file"]
    return "/".join([LOGGED_DIR, *parts])


def files_of(file: LoggedFile) -> list[tuple[str, str]]:
    """(local path, asset name) of each file of a logged file or directory (a directory's files under its name)."""
    name = asset_name(file)
    if not os.path.isdir(file.path):
        return [(file.path, name)]
    out = []
    for root, _dirs, names in os.walk(file.path):
        for each in sorted(names):
            path = os.path.join(root, each)
            out.append((path, f"{name}/{os.path.relpath(path, file.path).replace(os.sep, '/')}"))
    return out


def checkpoint_name(checkpoint: CheckpointInfo, branch: int) -> str:
    """The model name of a checkpoint: ``checkpoint_<step>``, ``checkpoint_<step>_branch<n>`` in the n-th PBT
    branch that went back to an earlier step (the earlier branch's model of that step keeps its name), the
    directory's name when the step is unknown."""
    if checkpoint.step is None:
        return os.path.basename(checkpoint.path.rstrip("/"))
    return f"checkpoint_{checkpoint.step}" + (f"_branch{branch}" if branch else "")
