"""How hook calls get from the core to every plugin: fan-out, one queue and thread per plugin (the calls are
built by ``emitter.HookEmitter``).

- ``Dispatcher``: the sink of a run: fans each call out to every plugin's worker, drains them all at the end.
- ``PluginWorker``: one plugin's bounded queue and worker thread. Tune's thread only calls ``submit``, an
  O(1) enqueue that blocks only while the queue is full (backpressure). A plugin whose queue stays full, or
  whose current call runs, for ``stuck_timeout`` is declared stuck and disabled (the watchdog, checked by
  ``submit`` and by the drain), and never waited for again. The worker thread hands the queued calls to the
  plugin's ``Transport``: ``thread_transport`` calls the hooks right there (the default),
  ``process_transport`` sends them to the plugin's own process (``isolate=``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from trackbridge import checkpoint_pins
from trackbridge.journal import JOURNAL_HOOKS
from trackbridge.ledger import DeliveryLedger, FirstError, PluginStats
from trackbridge.loading import LoadedPlugin
from trackbridge.thread_transport import ThreadTransport
from trackbridge.transport import (
    DeliveryOptions,
    HookCall,
    Transport,
)

logger = logging.getLogger("trackbridge")
#: How often the drain looks at the watchdog while it waits (seconds).
_WATCH_EVERY = 0.25
#: How long a worker that emptied its queue lets new calls gather before it takes them (seconds). Without
#: it, every result Tune submits wakes every plugin's thread, and each wake-up makes Tune's thread hand over
#: the interpreter lock; with it, a busy run wakes each worker about this often. Events reach a plugin at
#: most this much later; a closing run (and a queue half full) ends the wait at once.
GATHER_INTERVAL = 0.05


@dataclass(frozen=True)
class _Stop:
    """The last item of a queue: finish by ``deadline`` (``time.monotonic()``; None: no limit)."""

    deadline: float | None


class PluginWorker:
    """The queue and thread of one plugin."""

    def __init__(
        self, plugin: LoadedPlugin, transport: Transport, ledger: DeliveryLedger, options: DeliveryOptions
    ) -> None:
        self.plugin = plugin
        self.ledger = ledger
        self._transport = transport
        self._options = options
        self._queue: queue.Queue[HookCall | _Stop] = queue.Queue(maxsize=max(1, options.queue_size))
        self._thread = threading.Thread(target=self._run, name=f"trackbridge-{plugin.name}", daemon=True)
        self._finished = False
        #: Set to end a worker's gathering wait early (the run is closing, or the queue is filling up).
        self._hurry = threading.Event()
        #: Calls taken off the queue that the transport is delivering right now.
        self._in_hand = 0
        #: The transport calls the hooks on this thread (a process transport's child worker does it there).
        self._in_thread = isinstance(transport, ThreadTransport)

    # ----------------------------------------------------------------- the emitting side (Tune's thread)
    def start(self) -> None:
        self._transport.start()
        self._thread.start()

    def submit(self, call: HookCall) -> None:
        """Enqueue one call (if the plugin implements its hook); blocks while the queue is full, never past
        ``stuck_timeout``. A stuck or disabled plugin's calls are counted as dropped."""
        if call.hook not in self.plugin.hooks and call.hook not in JOURNAL_HOOKS:
            return
        if self.ledger.disabled or self._watch():
            self._drop([call])
            return
        try:
            self._queue.put(call, block=True, timeout=self._options.stuck_timeout)
        except queue.Full:
            self.ledger.declare_stuck(
                f"stuck: its queue stayed full for {self._options.stuck_timeout:g}s (a tracker call that never returns?)"
            )
            self._drop([call])
            self._drop_pending()
            return
        depth = self._queue.qsize()
        self.ledger.queue_depth(depth)
        if depth * 2 >= self._queue.maxsize:
            self._hurry.set()

    def _watch(self) -> bool:
        """The watchdog: True, and the plugin declared stuck (what it has queued dropped), once the call it is
        in has run longer than ``stuck_timeout``."""
        reason = self.ledger.overdue_call(self._options.stuck_timeout)
        if reason is None:
            return False
        if not self.ledger.stuck:
            self.ledger.declare_stuck(reason)
            self._drop_pending()
        return True

    def close(self, timeout: float | None) -> bool:
        """Deliver what is queued, finish the transport, stop the thread. False if that did not happen
        within ``timeout`` seconds (what was left is counted as dropped)."""
        if not self._thread.is_alive():
            if self._thread.ident is None:  # never started: nothing to deliver
                return True
            if not self._finished:  # the thread died without finishing (see _run): release the transport
                self._transport.abort()
            return self._finished
        deadline = None if timeout is None else time.monotonic() + timeout
        self._watch()  # a stuck plugin's queue is emptied: the stop item fits
        self._hurry.set()
        try:
            self._queue.put(_Stop(deadline), timeout=timeout)
        except queue.Full:
            self.ledger.disable("drain timed out with a full queue")
            self._drop_pending()
            self._transport.abort()
            return False
        # The transport finishes by the deadline; a grace period lets it report how far it got. A call running
        # past stuck_timeout ends the wait early: the plugin is stuck, its thread (a daemon) is left behind.
        end = None if deadline is None else deadline + self._transport.finish_grace
        while self._thread.is_alive() and not self._watch():
            left = _WATCH_EVERY if end is None else min(_WATCH_EVERY, end - time.monotonic())
            if left <= 0:
                break
            self._thread.join(left)
        if self._thread.is_alive():
            # the calls still queued, and those in the transport's hands (they may yet arrive: not confirmed;
            # the ledger ignores what the thread reports from now on, so nothing is counted twice)
            call = self.ledger.running_call()
            in_hand = self._in_hand if self.ledger.abandon() or not self._in_thread else 0
            self.ledger.dropped(in_hand)
            reason = f"did not finish within the drain timeout ({timeout}s); {self._drop_pending() + in_hand} events undelivered"
            if call is not None and (timeout is None or call[1] >= timeout):  # in one call through the whole drain
                self.ledger.declare_stuck(f"stuck: a call to {call[0]} has run for {call[1]:.0f}s and {reason}")
            else:
                self.ledger.disable(reason)
            self._transport.abort()
            return False
        return self._finished

    def _drop(self, calls: Sequence[HookCall]) -> int:
        """Count ``calls`` as dropped (those the journal alone follows are no events of the plugin); this
        plugin no longer holds their checkpoints' pins."""
        dropped = sum(1 for call in calls if call.hook in self.plugin.hooks)
        self.ledger.dropped(dropped)
        checkpoint_pins.release(calls, self.plugin.name)
        return dropped

    def _drop_pending(self) -> int:
        calls: list[HookCall] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return self._drop(calls)
            if isinstance(item, HookCall):
                calls.append(item)

    # ----------------------------------------------------------------- the delivering side (the worker thread)
    def _take_batch(self, first: HookCall | _Stop) -> list[HookCall | _Stop]:
        batch = [first]
        while len(batch) < self._transport.batch_size and not isinstance(batch[-1], _Stop):
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        try:
            self._deliver_until_stopped()
        except Exception as exc:  # a transport bug must never leave Tune blocked on a full queue
            logger.exception("trackbridge: the delivery thread of plugin %r crashed", self.plugin.name)
            self.ledger.disable(f"its delivery thread crashed: {type(exc).__name__}: {exc}")
            self._drop_pending()
            self._transport.abort()

    def _deliver_until_stopped(self) -> None:
        while not (self.ledger.stuck and self._in_thread):  # a stuck call that returned: nobody waits any more
            due = self._transport.flush_due()
            timeout = None if due is None else max(0.0, due - time.monotonic())
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._transport.flush()
                continue
            batch = self._take_batch(first)
            calls = [item for item in batch if isinstance(item, HookCall)]
            if calls:
                if self.ledger.disabled:
                    self._drop(calls)
                else:
                    self._in_hand = sum(1 for call in calls if call.hook in self.plugin.hooks)
                    self._transport.deliver(calls)
                    self._in_hand = 0
                    if self._in_thread:
                        checkpoint_pins.release(calls, self.plugin.name)
            last = batch[-1]
            if isinstance(last, _Stop):
                self._finished = self._transport.finish(last.deadline)
                return
            if self._queue.empty():
                self._transport.idle()
                if self._hurry.wait(GATHER_INTERVAL):
                    self._hurry.clear()


#: Builds the transport of one plugin (the callback's choice: in-thread, or a process for ``isolate=``).
TransportFactory = Callable[[LoadedPlugin, DeliveryLedger, DeliveryOptions], Transport]


def plugin_worker(
    plugin: LoadedPlugin, options: DeliveryOptions, make_transport: TransportFactory = ThreadTransport
) -> PluginWorker:
    """A worker for ``plugin`` whose transport ``make_transport`` builds (default: hooks called in-thread)."""
    ledger = DeliveryLedger(plugin.name)
    return PluginWorker(plugin, make_transport(plugin, ledger, options), ledger, options)


class Dispatcher:
    """Every plugin's worker, fed from one place."""

    def __init__(
        self,
        plugins: Iterable[LoadedPlugin],
        options: DeliveryOptions | None = None,
        *,
        transport_for: TransportFactory = ThreadTransport,
    ) -> None:
        options = options or DeliveryOptions()
        self.workers = [plugin_worker(plugin, options, transport_for) for plugin in plugins]
        self._started = False
        self._closed = False
        self._late_warned = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            for worker in self.workers:
                worker.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, call: HookCall) -> None:
        if self._closed:  # e.g. a SIGTERM handler of the user's drained the run and Tune went on
            if not self._late_warned:
                self._late_warned = True
                logger.warning("trackbridge: events after the run was drained and closed are not tracked")
            for worker in self.workers:
                if call.hook in worker.plugin.hooks:
                    worker.ledger.dropped(1)
            return
        for worker in self.workers:
            worker.submit(call)

    def close(self, timeout: float | None) -> dict[str, bool]:
        """Drain every worker, all in parallel, each within ``timeout`` seconds. Returns, per plugin,
        whether it finished."""
        if self._closed:
            return {w.plugin.name: True for w in self.workers}
        self._closed = True
        results: dict[str, bool] = {}

        def close_one(worker: PluginWorker) -> None:
            results[worker.plugin.name] = worker.close(timeout)

        closers = [threading.Thread(target=close_one, args=(w,), daemon=True) for w in self.workers]
        for closer, worker in zip(closers, self.workers, strict=True):
            try:
                closer.start()
            except RuntimeError:  # no new threads in an exit hook (Python 3.12.0, 3.12.1): one after the other
                close_one(worker)
        deadline = None if timeout is None else time.monotonic() + timeout + 5.0
        for closer in (c for c in closers if c.ident is not None):
            closer.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return {w.plugin.name: results.get(w.plugin.name, False) for w in self.workers}

    def stats(self) -> list[PluginStats]:
        return [w.ledger.stats for w in self.workers]

    def first_error(self) -> FirstError | None:
        for worker in self.workers:
            if worker.ledger.first_error is not None:
                return worker.ledger.first_error
        return None
