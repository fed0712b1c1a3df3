"""Per-plugin delivery: one bounded queue and one worker thread per plugin.

Tune's thread only calls ``submit`` (an O(1) enqueue). Each worker calls its plugin's hooks in the order
the events were submitted, calls ``trackbridge_flush`` when its queue runs dry, isolates the plugin's errors,
and counts what was delivered, failed or lost, for the delivery report.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from trackbridge.errors import TransientError
from trackbridge.loading import LoadedPlugin

logger = logging.getLogger("trackbridge")

FLUSH = "trackbridge_flush"
SETUP = "trackbridge_setup"
TRIAL_COMPLETE = "trackbridge_trial_complete"
EXPERIMENT_END = "trackbridge_experiment_end"
_STOP = object()


@dataclass
class _Event:
    hook: str
    kwargs: Mapping[str, Any]
    trial_id: str | None
    enqueued: float


@dataclass
class PluginStats:
    """What happened to one plugin's events; the rows of the delivery report."""

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


class PluginWorker:
    """The queue and thread of one plugin."""

    def __init__(
        self,
        plugin: LoadedPlugin,
        *,
        queue_size: int = 10_000,
        flush_interval: float = 0.5,
        stuck_timeout: float = 300.0,
        max_consecutive_failures: int = 100,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
    ) -> None:
        self.plugin = plugin
        self.stats = PluginStats(plugin.name)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._flush_interval = flush_interval
        self._stuck_timeout = stuck_timeout
        self._max_consecutive_failures = max_consecutive_failures
        self._consecutive_failures = 0
        self._max_retries = max(0, int(max_retries))
        self._retry_backoff = float(retry_backoff)
        #: The first failure (plugin, hook, trial id, exception), for ``fail_fast``.
        self.first_error: tuple[str, str, str | None, BaseException] | None = None
        self._logged: set[tuple[str, str | None]] = set()
        self._disabled = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"trackbridge-{plugin.name}", daemon=True
        )
        self._stats_lock = threading.Lock()

    # ----------------------------------------------------------------- Tune's side
    def start(self) -> None:
        self._thread.start()

    @property
    def disabled(self) -> bool:
        return self._disabled.is_set()

    def submit(self, hook: str, kwargs: Mapping[str, Any], trial_id: str | None = None) -> None:
        """Enqueue one event; blocks while the queue is full (backpressure), up to ``stuck_timeout``."""
        if hook not in self.plugin.hooks:
            return
        if self._disabled.is_set():
            with self._stats_lock:
                self.stats.dropped += 1
            return
        event = _Event(hook, kwargs, trial_id, time.monotonic())
        try:
            self._queue.put(event, block=True, timeout=self._stuck_timeout)
            depth = self._queue.qsize()
            if depth > self.stats.max_queue_depth:
                self.stats.max_queue_depth = depth
        except queue.Full:
            self._disable(
                f"stuck: its queue stayed full for {self._stuck_timeout:.0f}s (a tracker call that never returns?)"
            )
            with self._stats_lock:
                self.stats.dropped += 1 + self._drain_pending()

    def close(self, timeout: float | None) -> bool:
        """Deliver what is queued, then stop the thread. False if it did not finish within ``timeout``."""
        if not self._thread.is_alive():
            return True
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            self._disable("drain timed out with a full queue")
            return False
        self._thread.join(timeout)
        if self._thread.is_alive():
            pending = self._drain_pending()
            with self._stats_lock:
                self.stats.dropped += pending
            self._disable(f"did not finish within the drain timeout ({timeout}s); {pending} events undelivered")
            return False
        return True

    def pending(self) -> int:
        return self._queue.qsize()

    # ----------------------------------------------------------------- worker side
    def _disable(self, reason: str) -> None:
        if self._disabled.is_set():
            return
        self.stats.disabled_reason = reason
        self._disabled.set()
        logger.error("trackbridge: plugin %r disabled for the rest of this run: %s", self.plugin.name, reason)

    def _drain_pending(self) -> int:
        count = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return count
            if item is not _STOP:
                count += 1

    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, TransientError):
            return True
        retry_on = getattr(self.plugin.obj, "retry_on", ()) or ()
        try:
            return bool(retry_on) and isinstance(exc, tuple(retry_on))
        except TypeError:
            return False

    def _invoke(self, caller: Any, hook: str, kwargs: Mapping[str, Any]) -> None:
        """Call the hook; retry transient errors with exponential backoff, then re-raise."""
        attempt = 0
        while True:
            try:
                caller(**kwargs)
                return
            except Exception as exc:
                if attempt >= self._max_retries or not self._is_transient(exc) or self._disabled.is_set():
                    raise
                delay = self._retry_backoff * (2**attempt)
                attempt += 1
                with self._stats_lock:
                    self.stats.retried += 1
                logger.warning(
                    "trackbridge: plugin %r: transient error in %s (%s: %s); retry %d/%d in %.1fs",
                    self.plugin.name, hook, type(exc).__name__, exc, attempt, self._max_retries, delay,
                )
                time.sleep(delay)

    def _call(self, hook: str, kwargs: Mapping[str, Any], trial_id: str | None) -> bool:
        caller = getattr(self.plugin.manager.hook, hook)
        started = time.perf_counter()
        try:
            self._invoke(caller, hook, kwargs)
        except Exception as exc:  # isolation: a plugin's error never leaves its worker
            if self.first_error is None:
                self.first_error = (self.plugin.name, hook, trial_id, exc)
            with self._stats_lock:
                self.stats.failed += 1
                self.stats.errors_by_hook[hook] = self.stats.errors_by_hook.get(hook, 0) + 1
            self._consecutive_failures += 1
            key = (hook, trial_id)
            where = f" for trial {trial_id}" if trial_id else ""
            if key not in self._logged:
                self._logged.add(key)
                logger.error(
                    "trackbridge: plugin %r failed in %s%s: %s",
                    self.plugin.name, hook, where, f"{type(exc).__name__}: {exc}",
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )
            if self._consecutive_failures >= self._max_consecutive_failures:
                self._disable(f"{self._consecutive_failures} consecutive failures, the last in {hook}: {exc!r}")
            return False
        finally:
            self.stats.busy_seconds += time.perf_counter() - started
        self._consecutive_failures = 0
        if hook != FLUSH:
            with self._stats_lock:
                self.stats.delivered += 1
        return True

    def _flush(self) -> None:
        if FLUSH in self.plugin.hooks and not self._disabled.is_set():
            self.stats.flushes += 1
            self._call(FLUSH, {}, None)

    def _run(self) -> None:
        dirty = False
        last_flush = time.monotonic()
        while True:
            timeout = None
            if dirty:
                timeout = max(0.0, last_flush + self._flush_interval - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._flush()
                dirty, last_flush = False, time.monotonic()
                continue
            if item is _STOP:
                if dirty:
                    self._flush()
                return
            if self._disabled.is_set():
                with self._stats_lock:
                    self.stats.dropped += 1
                continue
            lag = time.monotonic() - item.enqueued
            if lag > self.stats.max_lag_seconds:
                self.stats.max_lag_seconds = lag
            if item.hook in (TRIAL_COMPLETE, EXPERIMENT_END) and dirty:
                self._flush()
                dirty, last_flush = False, time.monotonic()
            self._call(item.hook, item.kwargs, item.trial_id)
            if item.hook == EXPERIMENT_END:
                dirty = False  # the last call: nothing may follow it, not even a flush
                continue
            dirty = dirty or item.hook not in (SETUP, TRIAL_COMPLETE)
            if self._queue.empty() and time.monotonic() - last_flush >= self._flush_interval:
                self._flush()
                dirty, last_flush = False, time.monotonic()


class Dispatcher:
    """Fans each event out to every plugin's worker."""

    def __init__(
        self, plugins: Iterable[LoadedPlugin], isolate: Iterable[str] = (), **worker_options: Any
    ) -> None:
        isolated = set(isolate)
        self.workers: list[PluginWorker] = []
        for plugin in plugins:
            if plugin.name in isolated:
                from trackbridge.isolation import ProcessPluginWorker

                self.workers.append(ProcessPluginWorker(plugin, **worker_options))
            else:
                self.workers.append(PluginWorker(plugin, **worker_options))
        self._started = False
        self._closed = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            for worker in self.workers:
                worker.start()

    @property
    def started(self) -> bool:
        return self._started

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, hook: str, kwargs: Mapping[str, Any], trial_id: str | None = None) -> None:
        for worker in self.workers:
            worker.submit(hook, kwargs, trial_id)

    def close(self, timeout: float | None) -> dict[str, bool]:
        """Drain every queue, all in parallel, within ``timeout`` seconds overall."""
        if self._closed:
            return {w.plugin.name: True for w in self.workers}
        self._closed = True
        deadline = None if timeout is None else time.monotonic() + timeout
        results = {}
        for worker in self.workers:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            results[worker.plugin.name] = worker.close(remaining)
        return results

    def stats(self) -> list[PluginStats]:
        return [w.stats for w in self.workers]

    def first_error(self) -> tuple[str, str, str | None, BaseException] | None:
        for worker in self.workers:
            if worker.first_error is not None:
                return worker.first_error
        return None
