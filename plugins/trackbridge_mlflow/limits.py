"""MLflow's limits on names and values, and how TrackBridge stays inside them.

MLflow rejects a whole ``log_batch`` call when one key has a character it does not allow, and a whole run's
parameters when one value is too long. Tune configs and result dicts are full of such keys (``acc@top1``,
``a//b``, ``../x``) and long values (a serialised model spec), so every key and value is made acceptable
here, deterministically, before it is sent: the same input always gives the same MLflow name, so a metric
keeps one series across flushes, trial restarts and ``Tuner.restore``.

Nothing here imports MLflow at module import time; ``Limits.from_mlflow()`` reads the installed version's
constants (``mlflow.utils.validation``) once the SDK has been imported in ``trackbridge_setup``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

#: Characters MLflow accepts in metric, param and tag names (``mlflow.utils.validation.
#: validate_param_and_metric_name``): word characters, ``/``, ``.``, ``-``, space and, except on Windows,
#: ``:``. Everything else becomes ``_``.
_BAD_CHARS = re.compile(r"[^/\w.\- ]" if os.name == "nt" else r"[^/\w.\- :]")
_HASH_LEN = 8


@dataclass(frozen=True)
class Limits:
    """MLflow's per-entity and per-call limits (defaults: MLflow 3.x)."""

    key_length: int = 250
    param_value_length: int = 6000
    tag_value_length: int = 8000
    params_tags_per_batch: int = 100
    metrics_per_batch: int = 1000

    @classmethod
    def from_mlflow(cls) -> Limits:
        """The limits of the installed MLflow (falls back to the defaults for a constant it lacks)."""
        try:
            from mlflow.utils import validation as v
        except ImportError:  # pragma: no cover - the plugin requires mlflow
            return cls()
        d = cls()
        return cls(
            key_length=getattr(v, "MAX_ENTITY_KEY_LENGTH", d.key_length),
            param_value_length=getattr(v, "MAX_PARAM_VAL_LENGTH", d.param_value_length),
            tag_value_length=getattr(v, "MAX_TAG_VAL_LENGTH", d.tag_value_length),
            params_tags_per_batch=getattr(v, "MAX_PARAMS_TAGS_PER_BATCH", d.params_tags_per_batch),
            metrics_per_batch=getattr(v, "MAX_METRICS_PER_BATCH", d.metrics_per_batch),
        )


def short_hash(text: str) -> str:
    """Eight hex digits of the SHA-1 of ``text``: stable across processes (unlike ``hash()``)."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]


def sanitize_key(key: Any, max_length: int = Limits.key_length) -> str:
    """An MLflow-acceptable metric/param/tag name for ``key``; the same ``key`` always gives the same name.

    1. every character MLflow rejects (anything but letters, digits, ``_ - . / space`` and ``:``; no ``:``
       on Windows) becomes ``_``;
    2. empty path segments are dropped (``a//b`` -> ``a/b``, no leading or trailing ``/``), and segments
       ``.`` and ``..`` become ``_`` and ``__`` (MLflow treats names as paths and refuses ones that
       normalise to another name);
    3. a name that would still start with ``..`` gets its first ``.`` replaced by ``_``; an empty name is ``_``;
    4. a name longer than ``max_length`` (250) is cut and ends with ``_`` plus 8 hex digits of the SHA-1 of
       the original key, so two long keys with the same start stay distinct.
    """
    original = str(key)
    name = _BAD_CHARS.sub("_", original)
    segments = []
    for segment in name.split("/"):
        if segment == "":
            continue
        if segment in (".", ".."):
            segment = "_" * len(segment)
        segments.append(segment)
    name = "/".join(segments)
    if name.startswith(".."):
        name = "_" + name[1:]
    if not name:
        name = "_"
    if len(name) > max_length:
        name = with_hash(name, original, max_length)
    return name


def with_hash(name: str, original: str, max_length: int = Limits.key_length) -> str:
    """``name`` cut to fit ``max_length`` with ``_<hash of original>`` appended (a deterministic
    disambiguator for long names and for two keys that sanitise to the same name)."""
    suffix = "_" + short_hash(original)
    head = name[: max(0, max_length - len(suffix))].rstrip("/")
    return head + suffix


class KeyMap:
    """Original keys -> MLflow names for one namespace of one run (its metrics, or its params).

    ``sanitize_key`` is a pure function, but two different keys can sanitise to the same name
    (``a@b`` and ``a#b``); MLflow would then mix two series (metrics) or reject the batch (duplicate
    params). The second key to claim a name gets ``with_hash(name, key)`` instead. ``changed`` lists the
    keys whose name differs from the key, for a one-time warning.
    """

    def __init__(self, max_length: int = Limits.key_length) -> None:
        self._max_length = max_length
        self._names: dict[str, str] = {}
        self._owners: dict[str, str] = {}

    def __call__(self, key: str) -> str:
        name = self._names.get(key)
        if name is not None:
            return name
        name = sanitize_key(key, self._max_length)
        owner = self._owners.get(name)
        if owner is not None and owner != key:
            name = with_hash(name, key, self._max_length)
        self._names[key] = name
        self._owners.setdefault(name, key)
        return name


def format_value(value: Any) -> str:
    """A param or tag value as MLflow stores it (what ``mlflow.log_param`` does: ``str``)."""
    return value if isinstance(value, str) else str(value)


def truncation_marker(total: int, where: str | None = None) -> str:
    """The text that ends a cut value, so nobody mistakes it for the whole value."""
    if where:
        return f"...[truncated: {total} chars; full value in {where}]"
    return f"...[truncated: {total} chars]"


def truncate(text: str, limit: int, where: str | None = None) -> str:
    """``text`` if it fits ``limit`` characters, else its start plus a ``truncation_marker``."""
    if len(text) <= limit:
        return text
    marker = truncation_marker(len(text), where)
    return text[: max(0, limit - len(marker))] + marker


def truncate_tail(text: str, limit: int) -> str:
    """Keep the *end* of ``text`` (an error's last lines say what went wrong) within ``limit``."""
    if len(text) <= limit:
        return text
    marker = f"[truncated: {len(text)} chars]..."
    return marker + text[len(text) - max(0, limit - len(marker)) :]


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    size = max(1, int(size))
    for start in range(0, len(items), size):
        yield items[start : start + size]
