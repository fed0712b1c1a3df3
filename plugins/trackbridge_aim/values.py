"""What a trial sends, as Aim stores it: each value converted to the kind of Aim sequence that holds it, a
result's own Aim context and epoch taken from its ``context/<name>`` and ``epoch`` keys, and the names of
logged files kept inside their folder.

Aim keeps one kind per sequence (a name in a context): the first value's kind wins, and a later value of
another kind is skipped with one warning per key. A value that cannot be converted is skipped the same way,
never taking the rest of its result with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from trackbridge import HISTOGRAM, SCALAR, TEXT, classify, to_float

#: A result key ``context/<name>`` becomes ``<name>`` of the result's Aim context (Ray's callback reads a
#: result's ``context`` dict the same way).
RESULT_CONTEXT_PREFIX = "context/"
#: A result's ``epoch`` is the Aim epoch of its values.
EPOCH_KEY = "epoch"

Warn = Callable[[str, str], None]
ContextKey = tuple[tuple[str, Any], ...]


@dataclass
class SequenceKinds:
    """The kind (scalar, histogram, text) of every sequence of one run: (name, context) -> kind."""

    kinds: dict[tuple[str, ContextKey], str] = field(default_factory=dict)

    def accepts(self, name: str, context: Mapping[str, Any], kind: str, warn: Warn) -> bool:
        first = self.kinds.setdefault((name, tuple(sorted(context.items()))), kind)
        if first == kind:
            return True
        warn(f"kind:{name}", f"{name!r} was first tracked as a {first}, now a {kind}; Aim keeps one kind, skipped")
        return False


def split_result(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int | None]:
    """A result as (values to track, its own Aim context, its epoch). An epoch that is not a finite number
    stays a value."""
    values: dict[str, Any] = {}
    context: dict[str, Any] = {}
    epoch = None
    for key, value in metrics.items():
        if key.startswith(RESULT_CONTEXT_PREFIX) and isinstance(value, (str, int, float, bool)):
            context[key[len(RESULT_CONTEXT_PREFIX) :]] = value
        elif key == EPOCH_KEY and classify(value) == SCALAR and math.isfinite(to_float(value)):
            epoch = int(to_float(value))
        else:
            values[key] = value
    return values, context, epoch


def aim_values(
    aim: Any, values: Mapping[str, Any], context: Mapping[str, Any], kinds: SequenceKinds, warn: Warn
) -> dict[str, Any]:
    """``values`` as Aim objects: numbers as floats (NaN and infinities kept), lists and arrays of numbers as
    ``aim.Distribution`` of their finite values, strings as ``aim.Text``; anything else skipped."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        kind = classify(value)
        try:
            if kind == SCALAR:
                converted: Any = to_float(value)
            elif kind == HISTOGRAM:
                samples = np.asarray(value, dtype=float).ravel()
                finite = samples[np.isfinite(samples)]
                if finite.size == 0:
                    warn(f"no-finite:{key}", f"{key!r} holds no finite number; Aim cannot bin it, skipped")
                    continue
                converted = aim.Distribution(samples=finite)
            elif kind == TEXT:
                converted = aim.Text(value)
            else:
                warn(f"skip:{key}", f"{key!r} is a {type(value).__name__}, which Aim does not track; skipped")
                continue
        except Exception as exc:  # one odd value never takes the rest of the result with it
            warn(f"convert:{key}", f"{key!r} could not be converted for Aim ({exc!r}); skipped")
            continue
        if kinds.accepts(key, context, kind, warn):
            out[key] = converted
    return out


def logged_file_name(name: str) -> str:
    """The artifact name of a file logged inside a trial: ``logged/<name>``, reduced to plain path parts (no
    absolute path, no ``..``), so it never lands outside the run's artifact folder."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", ".", "..")]
    return "/".join(["logged", *parts]) if parts else "logged/file"
