"""Tune values -> what ``wandb`` stores: history rows, artifact metadata, names W&B accepts.

Every value is sorted by ``trackbridge.classify`` so W&B gets the same numbers the other trackers
get; what W&B cannot store is skipped with one warning per key (``WarnOnce``), never raised.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from trackbridge import HISTOGRAM, SCALAR, TEXT, WarnOnce, classify, to_float

#: The history key (and x-axis) carrying Tune's ``training_iteration``.
STEP_METRIC = "training_iteration"
#: The history key (and x-axis) carrying the step of values logged inside a trial (``trackbridge.log``).
LOG_STEP_METRIC = "trial_step"
#: The history key marking a PBT exploit: 1 in a row of its own at ``training_iteration`` = the step the trial
#: continues from (the donor checkpoint's step); the same name in every first-party plugin.
EXPLOIT_METRIC = "trackbridge/exploit"
#: Keys W&B fills in itself in every history row; a metric with such a name would be overwritten.
RESERVED_KEYS = frozenset({"_step", "_runtime", "_timestamp", "_wandb"})

_UNSAFE_ID = re.compile(r"[/\\#?%:]")
_UNSAFE_ARTIFACT = re.compile(r"[^A-Za-z0-9_.\-]")
_UNSAFE_PROJECT = re.compile(r"[/\\#?%:,]")


def scalar(value: Any) -> Any:
    """A scalar as a plain Python value: bools stay bools, ints stay ints, NaN and infinities stay floats."""
    if isinstance(value, bool):
        return value
    if hasattr(value, "item"):  # numpy scalars and 0-d arrays
        value = value.item()
    if isinstance(value, (bool, int, float)):
        return value
    return to_float(value)


def histogram_values(value: Any) -> list[float] | None:
    """The finite numbers of a list/array as floats (NaN and infinities dropped), or None if none are left."""
    import numpy as np

    array = np.asarray(value, dtype=float).ravel()
    array = array[np.isfinite(array)]
    return array.tolist() if array.size else None


def history_row(
    step: int,
    metrics: Mapping[str, Any],
    *,
    text_mode: str,
    wandb: Any,
    warn: WarnOnce,
    step_key: str = STEP_METRIC,
    passthrough: type | tuple[type, ...] = (),
) -> tuple[dict[str, Any], dict[str, str]]:
    """One Tune result (or one in-trial log) as one W&B history row, plus the strings destined for the summary.

    ``step`` goes into the row under ``step_key``. Scalars stay numbers, numeric lists/arrays become
    ``wandb.Histogram``, strings go where ``text_mode`` says (the row, the summary, a ``wandb.Html`` media file,
    or nowhere), instances of ``passthrough`` (W&B's own data types, for in-trial logs) go in unchanged;
    everything else is skipped.
    """
    row: dict[str, Any] = {step_key: step}
    summary: dict[str, str] = {}
    for key, value in metrics.items():
        if key in RESERVED_KEYS or key in (STEP_METRIC, step_key):
            warn(f"reserved:{key}", f"metric {key!r} clashes with a key W&B or TrackBridge sets itself; skipped")
            continue
        if passthrough and isinstance(value, passthrough):
            row[key] = value
            continue
        kind = classify(value)
        if kind == SCALAR:
            row[key] = scalar(value)
        elif kind == HISTOGRAM:
            values = histogram_values(value)
            if values is None:
                warn(f"histogram:{key}", f"metric {key!r} has no finite values to histogram; skipped")
                continue
            try:
                row[key] = wandb.Histogram(values)
            except Exception as exc:  # a histogram W&B refuses must not lose the whole row
                warn(f"histogram:{key}", f"metric {key!r} could not be made a wandb.Histogram ({exc}); skipped")
        elif kind == TEXT:
            if text_mode == "history":
                row[key] = value
            elif text_mode == "summary":
                summary[key] = value
            elif text_mode == "html":
                row[key] = wandb.Html(_html_text(value))
            else:
                warn(f"text:{key}", f"metric {key!r} is text and text='skip'; skipped")
        else:
            warn(
                f"skip:{key}",
                f"metric {key!r} has a value W&B cannot store as a metric ({type(value).__name__}); skipped",
            )
    return row, summary


def data_types(wandb: Any) -> tuple[type, ...]:
    """The base class of W&B's own data types (``wandb.Image``, ``wandb.Table``, ``wandb.Histogram``, ...):
    values logged inside a trial that are instances of it go into the row unchanged."""
    base = getattr(getattr(wandb, "data_types", None), "WBValue", None)
    if not isinstance(base, type):  # pragma: no cover - older layouts
        from wandb.sdk.data_types.base_types.wb_value import WBValue

        base = WBValue
    return (base,)


def _html_text(value: str) -> str:
    import html

    return f"<pre>{html.escape(value)}</pre>"


def json_safe(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics reduced to what JSON (artifact metadata) holds: scalars and strings; non-finite as strings."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        kind = classify(value)
        if kind == SCALAR:
            number = scalar(value)
            if isinstance(number, float) and not math.isfinite(number):
                number = str(number)
            out[key] = number
        elif kind == TEXT:
            out[key] = value
    return out


def run_id(value: str) -> str:
    """A run id W&B accepts (no ``/ \\ # ? % :``), from a Tune trial id."""
    return _UNSAFE_ID.sub("-", str(value))[:128]


def project_name(value: str) -> str:
    """A project name W&B accepts, from an experiment name."""
    return _UNSAFE_PROJECT.sub("-", str(value))[:128] or "trackbridge"


def artifact_name(value: str) -> str:
    """An artifact name W&B accepts (letters, digits, ``-``, ``_``, ``.``), from a trial name."""
    return _UNSAFE_ARTIFACT.sub("-", str(value))[:128] or "checkpoint"
