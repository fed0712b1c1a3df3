"""What happened to one plugin's events: counts for the delivery report, the disabled flag, the first error.

One ``DeliveryLedger`` per plugin is shared by the plugin's worker (Tune's side: queueing, backpressure)
and its transport (the delivering side), each updating it through these methods only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("trackbridge")

#: (plugin, hook, trial id, exception) of a plugin's first failure, for ``fail_fast``.
FirstError = tuple[str, str, str | None, BaseException]


@dataclass
class PluginStats:
    """The row of one plugin in the delivery report."""

    plugin: str
    delivered: int = 0
    failed: int = 0
    #: Events never handed to the plugin: it was disabled (stuck, or too many errors) or the drain timed out.
    dropped: int = 0
    retried: int = 0
    flushes: int = 0
    busy_seconds: float = 0.0
    max_lag_seconds: float = 0.0
    #: The most events ever waiting in the queue (bounded by ``queue_size``: memory stays flat).
    max_queue_depth: int = 0
    disabled_reason: str | None = None
    errors_by_hook: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin,
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "retried": self.retried,
            "flushes": self.flushes,
            "busy_seconds": round(self.busy_seconds, 4),
            "max_lag_seconds": round(self.max_lag_seconds, 4),
            "max_queue_depth": self.max_queue_depth,
            "disabled_reason": self.disabled_reason,
            "errors_by_hook": dict(self.errors_by_hook),
        }


class DeliveryLedger:
    """Thread-safe counts and state of one plugin's delivery."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.stats = PluginStats(plugin)
        self.first_error: FirstError | None = None
        self._disabled = threading.Event()
        self._lock = threading.Lock()

    @property
    def disabled(self) -> bool:
        return self._disabled.is_set()

    def disable(self, reason: str) -> None:
        """Stop delivering to this plugin for the rest of the run (logged once, with the reason)."""
        with self._lock:
            if self._disabled.is_set():
                return
            self.stats.disabled_reason = reason
            self._disabled.set()
        logger.error("trackbridge: plugin %r disabled for the rest of this run: %s", self.plugin, reason)

    def delivered(self, busy_seconds: float) -> None:
        with self._lock:
            self.stats.delivered += 1
            self.stats.busy_seconds += busy_seconds

    def failed(self, hook: str, trial_id: str | None, exc: BaseException, busy_seconds: float) -> None:
        with self._lock:
            self.stats.failed += 1
            self.stats.busy_seconds += busy_seconds
            self.stats.errors_by_hook[hook] = self.stats.errors_by_hook.get(hook, 0) + 1
            if self.first_error is None:
                self.first_error = (self.plugin, hook, trial_id, exc)

    def flushed(self, busy_seconds: float) -> None:
        with self._lock:
            self.stats.flushes += 1
            self.stats.busy_seconds += busy_seconds

    def dropped(self, count: int) -> None:
        if count:
            with self._lock:
                self.stats.dropped += count

    def retried(self) -> None:
        with self._lock:
            self.stats.retried += 1

    def lag(self, seconds: float) -> None:
        with self._lock:
            self.stats.max_lag_seconds = max(self.stats.max_lag_seconds, seconds)

    def queue_depth(self, depth: int) -> None:
        with self._lock:
            self.stats.max_queue_depth = max(self.stats.max_queue_depth, depth)

    def note_error(self, hook: str, trial_id: str | None, exc: BaseException) -> None:
        """Record a failure that another process counted (an isolated plugin), for ``fail_fast``."""
        with self._lock:
            if self.first_error is None:
                self.first_error = (self.plugin, hook, trial_id, exc)

    def merge(self, other: Mapping[str, Any]) -> None:
        """Add the counts of another ledger's ``stats.as_dict()`` (an isolated plugin's child process)."""
        with self._lock:
            s = self.stats
            for key in ("delivered", "failed", "dropped", "retried", "flushes", "busy_seconds"):
                setattr(s, key, getattr(s, key) + other[key])
            s.max_lag_seconds = max(s.max_lag_seconds, other["max_lag_seconds"])
            for hook, count in other["errors_by_hook"].items():
                s.errors_by_hook[hook] = s.errors_by_hook.get(hook, 0) + count
            if other["disabled_reason"] and not s.disabled_reason:
                s.disabled_reason = other["disabled_reason"]
