"""Shared treatment of config and metric values, so every plugin handles the same input the same way.

- ``flatten``: nested dicts to ``/``-joined keys.
- ``classify``: is a metric value a scalar, a histogram, a text, or something to skip?
- ``plain_config``: a config reduced to values every tracker can store (anything else becomes its repr).
- ``WarnOnce``: one warning per kind of skipped value, every occurrence counted.

Secrets (redaction, pickling, URI masking) have their own module: ``trackbridge.secrets``.
"""

from __future__ import annotations

import logging
import numbers
import threading
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("trackbridge")

SCALAR = "scalar"
HISTOGRAM = "histogram"
TEXT = "text"
SKIP = "skip"


#: Types that are never mappings: checked first, so the common values skip the slower ``Mapping`` ABC check
#: (this runs on Tune's thread for every value of every result).
_LEAVES = frozenset({float, int, str, bool, type(None)})


def flatten(data: Mapping[str, Any], sep: str = "/", prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings: ``{"a": {"b": 1}}`` -> ``{"a/b": 1}``. Lists and arrays are left whole."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{sep}{key}" if prefix else str(key)
        if type(value) not in _LEAVES and isinstance(value, Mapping):
            if value:
                out.update(flatten(value, sep, full))
            else:
                out[full] = {}
        else:
            out[full] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, complex)


def classify(value: Any) -> str:
    """How a tracker should store a metric value: ``SCALAR``, ``HISTOGRAM``, ``TEXT`` or ``SKIP``.

    Scalars: ints, floats (NaN and infinities included), bools, numpy scalars, 0-d arrays. Histograms:
    non-empty lists/tuples of numbers and numeric numpy arrays. Text: strings. Everything else (None, dicts
    left after flattening, objects) is skipped.
    """
    if isinstance(value, bool) or _is_number(value):
        return SCALAR
    if isinstance(value, str):
        return TEXT
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        kind = getattr(dtype, "kind", "")
        if kind in "biuf":
            if shape == ():
                return SCALAR
            return HISTOGRAM if getattr(value, "size", 0) > 0 else SKIP
        return SKIP
    if isinstance(value, (list, tuple)) and value and all((_is_number(v) or isinstance(v, bool)) for v in value):
        return HISTOGRAM
    return SKIP


def to_float(value: Any) -> float:
    """A scalar (as classified by ``classify``) as a Python float."""
    if hasattr(value, "item"):
        value = value.item()
    return float(value)


def plain_value(value: Any) -> Any:
    """Reduce a config value to something every tracker stores: None, bool, int, float, str, or a list of
    those. numpy scalars become Python numbers; anything else (functions, classes, open files) its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        try:
            return value.item()
        except Exception:  # pragma: no cover - exotic array types
            return repr(value)
    if hasattr(value, "tolist") and getattr(value, "dtype", None) is not None:
        try:
            return plain_value(value.tolist())
        except Exception:  # pragma: no cover
            return repr(value)
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if _is_number(value):
        return float(value)
    return repr(value)


def plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A nested config with every leaf reduced by ``plain_value`` and every key a string."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        out[str(key)] = plain_config(value) if isinstance(value, Mapping) else plain_value(value)
    return out


class WarnOnce:
    """Log a warning once per key (per plugin), and count every occurrence.

    Plugins use it for values they skip or convert, so a bad metric produces one warning, not one per
    result, and the delivery report can still say how many were skipped.
    """

    def __init__(self, plugin: str, log: logging.Logger | None = None) -> None:
        self.plugin = plugin
        self.counts: dict[str, int] = {}
        self._log = log or logger
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str) -> None:
        with self._lock:
            seen = self.counts.get(key, 0)
            self.counts[key] = seen + 1
        if not seen:
            self._log.warning("trackbridge: plugin %r: %s (warned once per key)", self.plugin, message)

    @property
    def total(self) -> int:
        return sum(self.counts.values())
