"""Deliver a plugin's events by calling its hooks on the worker's thread (the default transport).

Per call: retries of transient errors with exponential backoff, the plugin's errors caught, logged once per
hook and trial, and counted; too many failures in a row disable the plugin. Flushes: when the queue runs dry
(at most every ``flush_interval`` while results keep coming) and always before ``trackbridge_trial_complete``
and ``trackbridge_experiment_end``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from trackbridge.errors import TransientError
from trackbridge.journal import DeliveryJournal
from trackbridge.ledger import DeliveryLedger
from trackbridge.loading import LoadedPlugin
from trackbridge.transport import (
    EXPERIMENT_END,
    FLUSH,
    SETUP,
    TRIAL_CHECKPOINT,
    TRIAL_COMPLETE,
    TRIAL_LOG,
    TRIAL_RESULT,
    DeliveryOptions,
    HookCall,
    Transport,
)

logger = logging.getLogger("trackbridge")

#: Calls after which a buffering plugin has nothing new to write.
_NOTHING_TO_FLUSH_AFTER = (SETUP, TRIAL_COMPLETE, EXPERIMENT_END)


class ThreadTransport(Transport):
    """Calls one plugin's hooks, in order, on the calling (worker) thread."""

    def __init__(self, plugin: LoadedPlugin, ledger: DeliveryLedger, options: DeliveryOptions) -> None:
        self._plugin = plugin
        self._ledger = ledger
        self._options = options
        self._consecutive_failures = 0
        self._logged: set[tuple[str, str | None]] = set()
        self._dirty = False
        self._last_flush = time.monotonic()
        #: What this plugin holds durably, per trial (kept with the experiment; see ``journal``).
        durable = bool(getattr(plugin.obj, "durable_after_flush", True))
        self.journal = DeliveryJournal(plugin.name, durable, plugin.obj)

    # ------------------------------------------------------------------ Transport
    def deliver(self, calls: Sequence[HookCall]) -> None:
        for call in calls:
            implemented = call.hook in self._plugin.hooks  # if not, the call is there for the journal only
            if self._ledger.disabled:
                if implemented:
                    self._ledger.dropped(1)
                continue
            admitted = self.journal.admit(call)
            if admitted is None:  # the plugin holds this already (a replay after a restore, or a filled trial)
                if call.hook in (TRIAL_RESULT, TRIAL_CHECKPOINT, TRIAL_LOG):
                    self._ledger.skipped_replay()
                continue
            if call.hook in (TRIAL_COMPLETE, EXPERIMENT_END) and self._dirty:
                self.flush()
            if not implemented:
                self.journal.delivered(admitted)
            else:
                self._ledger.lag(time.monotonic() - call.emitted)
                if self._call(admitted.hook, admitted.kwargs, admitted.trial_id):
                    self.journal.delivered(admitted)
                else:
                    self.journal.failed(admitted)
            if implemented and call.hook not in _NOTHING_TO_FLUSH_AFTER:
                self._dirty = True
            elif call.hook == EXPERIMENT_END:
                self._dirty = False  # the last call: nothing may follow it, not even a flush

    def flush_due(self) -> float | None:
        return self._last_flush + self._options.flush_interval if self._dirty else None

    def flush(self) -> None:
        if FLUSH not in self._plugin.hooks:
            self.journal.flushed()
        elif not self._ledger.disabled:
            if self._call(FLUSH, {}, None):
                self.journal.flushed()
            else:
                self.journal.flush_failed()
        self._dirty, self._last_flush = False, time.monotonic()

    def idle(self) -> None:
        if self._dirty and time.monotonic() - self._last_flush >= self._options.flush_interval:
            self.flush()

    def finish(self, deadline: float | None) -> bool:
        if self._dirty:
            self.flush()
        return True

    # ------------------------------------------------------------------ calling one hook
    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, TransientError):
            return True
        retry_on = getattr(self._plugin.obj, "retry_on", ()) or ()
        try:
            return bool(retry_on) and isinstance(exc, tuple(retry_on))
        except TypeError:
            return False

    def _invoke(self, hook: str, kwargs: Mapping[str, Any]) -> None:
        """Call the hook; retry transient errors with exponential backoff, then re-raise."""
        caller = getattr(self._plugin.manager.hook, hook)
        attempt = 0
        while True:
            try:
                caller(**kwargs)
                return
            except Exception as exc:
                if attempt >= self._options.max_retries or not self._is_transient(exc) or self._ledger.disabled:
                    raise
                delay = self._options.retry_backoff * (2**attempt)
                attempt += 1
                self._ledger.retried()
                logger.warning(
                    "trackbridge: plugin %r: transient error in %s (%s: %s); retry %d/%d in %.1fs",
                    self._plugin.name,
                    hook,
                    type(exc).__name__,
                    exc,
                    attempt,
                    self._options.max_retries,
                    delay,
                )
                time.sleep(delay)

    def _call(self, hook: str, kwargs: Mapping[str, Any], trial_id: str | None) -> bool:
        """Call one hook; True when it returned (after retries), False when it failed (counted, logged)."""
        started = time.perf_counter()
        self._ledger.call_began(hook)  # the watchdog: a call running past stuck_timeout marks the plugin stuck
        try:
            self._invoke(hook, kwargs)
        except Exception as exc:  # isolation: a plugin's error never leaves its worker
            if hook == FLUSH:
                self._ledger.flushed(0.0)
            self._ledger.failed(hook, trial_id, exc, time.perf_counter() - started)
            self._consecutive_failures += 1
            self._log_once(hook, trial_id, exc)
            if self._consecutive_failures >= self._options.max_consecutive_failures:
                self._ledger.disable(f"{self._consecutive_failures} consecutive failures, the last in {hook}: {exc!r}")
            return False
        self._consecutive_failures = 0
        busy = time.perf_counter() - started
        if hook == FLUSH:
            self._ledger.flushed(busy)
        else:
            self._ledger.delivered(busy)
        return True

    def _log_once(self, hook: str, trial_id: str | None, exc: BaseException) -> None:
        key = (hook, trial_id)
        if key in self._logged:
            return
        self._logged.add(key)
        where = f" for trial {trial_id}" if trial_id else ""
        logger.error(
            "trackbridge: plugin %r failed in %s%s: %s",
            self._plugin.name,
            hook,
            where,
            f"{type(exc).__name__}: {exc}",
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )
