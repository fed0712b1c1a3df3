"""One plugin's bounded queue and worker thread; the thread hands the queued calls to the plugin's transport.

Tune's thread only calls ``submit``: an O(1) enqueue that blocks only while the queue is full
(backpressure), up to ``stuck_timeout``, after which the plugin is declared stuck and disabled.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

from trackbridge.calls import HookCall
from trackbridge.ledger import DeliveryLedger
from trackbridge.loading import LoadedPlugin
from trackbridge.thread_transport import ThreadTransport
from trackbridge.transport import DeliveryOptions, Transport


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

    # ----------------------------------------------------------------- the emitting side (Tune's thread)
    def start(self) -> None:
        self._transport.start()
        self._thread.start()

    def submit(self, call: HookCall) -> None:
        """Enqueue one call (if the plugin implements its hook); blocks while the queue is full."""
        if call.hook not in self.plugin.hooks:
            return
        if self.ledger.disabled:
            self.ledger.dropped(1)
            return
        try:
            self._queue.put(call, block=True, timeout=self._options.stuck_timeout)
        except queue.Full:
            self.ledger.disable(
                f"stuck: its queue stayed full for {self._options.stuck_timeout:.0f}s "
                "(a tracker call that never returns?)"
            )
            self.ledger.dropped(1 + self._drain_pending())
            return
        self.ledger.queue_depth(self._queue.qsize())

    def close(self, timeout: float | None) -> bool:
        """Deliver what is queued, finish the transport, stop the thread. False if that did not happen
        within ``timeout`` seconds (what was left is counted as dropped)."""
        if not self._thread.is_alive():
            return self._finished
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._queue.put(_Stop(deadline), timeout=timeout)
        except queue.Full:
            self.ledger.disable("drain timed out with a full queue")
            self.ledger.dropped(self._drain_pending())
            self._transport.abort()
            return False
        self._thread.join(timeout)
        if self._thread.is_alive():
            pending = self._drain_pending()
            self.ledger.dropped(pending)
            self.ledger.disable(f"did not finish within the drain timeout ({timeout}s); {pending} events undelivered")
            self._transport.abort()
            return False
        return self._finished

    def _drain_pending(self) -> int:
        count = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return count
            if isinstance(item, HookCall):
                count += 1

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
        while True:
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
                    self.ledger.dropped(len(calls))
                else:
                    self._transport.deliver(calls)
            last = batch[-1]
            if isinstance(last, _Stop):
                self._finished = self._transport.finish(last.deadline)
                return
            if self._queue.empty():
                self._transport.idle()


def thread_worker(plugin: LoadedPlugin, options: DeliveryOptions) -> PluginWorker:
    """A worker that calls the plugin's hooks on its own thread (the default delivery)."""
    ledger = DeliveryLedger(plugin.name)
    return PluginWorker(plugin, ThreadTransport(plugin, ledger, options), ledger, options)
