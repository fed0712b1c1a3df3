"""What happened to one plugin's events: counts for the delivery report, the disabled flag, the first error.

One ``DeliveryLedger`` per plugin is shared by the plugin's worker (Tune's side: queueing, backpressure)
and its transport (the delivering side), each updating it through these methods only.
"""

from __future__ import annotations

import logging
import threading
import time
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
    #: Results (and their checkpoints) not handed over because the plugin's journal says it holds them.
    skipped_replays: int = 0
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
            "skipped_replays": self.skipped_replays,
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
        #: (hook, ``time.monotonic()`` at its start) of the call the plugin is in right now, for the watchdog.
        self._call: tuple[str, float] | None = None
        self._stuck = False
        #: The drain gave up on the plugin: outcomes its thread reports later are not counted (see ``abandon``).
        self._abandoned = False

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

    # ------------------------------------------------------------------ the watchdog
    def call_began(self, hook: str) -> None:
        """The delivering side entered a call of ``hook``, retries included; its outcome (``delivered``,
        ``failed``, ``flushed``) ends it."""
        self._call = (hook, time.monotonic())

    @property
    def stuck(self) -> bool:
        """The plugin was declared stuck (a call or a full queue outlasted ``stuck_timeout``)."""
        return self._stuck

    def running_call(self) -> tuple[str, float] | None:
        """(hook, seconds it has run) of the call the plugin is in right now, if any."""
        call = self._call  # one read: the delivering thread may replace it at any moment
        return None if call is None else (call[0], time.monotonic() - call[1])

    def overdue_call(self, stuck_timeout: float) -> str | None:
        """Why the plugin is stuck if the call it is in has run longer than ``stuck_timeout``, else None."""
        call = self.running_call()
        if call is None or call[1] <= stuck_timeout:
            return None
        return f"stuck: a call to {call[0]} has run for {call[1]:.0f}s (stuck_timeout={stuck_timeout:g}s)"

    def declare_stuck(self, reason: str) -> None:
        """Disable the plugin as stuck; its thread is left alone (a daemon) and never waited for again."""
        self._stuck = True
        self.disable(reason)

    def abandon(self) -> bool:
        """The drain stops waiting for the plugin: from now on the outcomes its thread reports are ignored, so
        the caller counts what is unfinished as dropped and every event is counted once. True when a call
        was in progress (its outcome is now the caller's to count)."""
        with self._lock:
            self._abandoned = True
            return self._call is not None

    # ------------------------------------------------------------------ counts
    def delivered(self, busy_seconds: float) -> None:
        with self._lock:
            self._call = None
            if self._abandoned:
                return
            self.stats.delivered += 1
            self.stats.busy_seconds += busy_seconds

    def failed(self, hook: str, trial_id: str | None, exc: BaseException, busy_seconds: float) -> None:
        with self._lock:
            self._call = None
            if self._abandoned:
                return
            self.stats.failed += 1
            self.stats.busy_seconds += busy_seconds
            self.stats.errors_by_hook[hook] = self.stats.errors_by_hook.get(hook, 0) + 1
            if self.first_error is None:
                self.first_error = (self.plugin, hook, trial_id, exc)

    def flushed(self, busy_seconds: float) -> None:
        with self._lock:
            self._call = None
            if self._abandoned:
                return
            self.stats.flushes += 1
            self.stats.busy_seconds += busy_seconds

    def dropped(self, count: int) -> None:
        if count:
            with self._lock:
                self.stats.dropped += count

    def skipped_replay(self) -> None:
        with self._lock:
            self.stats.skipped_replays += 1

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
            if self._abandoned:
                return
            s = self.stats
            for key in ("delivered", "failed", "dropped", "retried", "skipped_replays", "flushes", "busy_seconds"):
                setattr(s, key, getattr(s, key) + other[key])
            s.max_lag_seconds = max(s.max_lag_seconds, other["max_lag_seconds"])
            for hook, count in other["errors_by_hook"].items():
                s.errors_by_hook[hook] = s.errors_by_hook.get(hook, 0) + count
            if other["disabled_reason"] and not s.disabled_reason:
                s.disabled_reason = other["disabled_reason"]
