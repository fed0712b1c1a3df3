"""How hook calls get from the core to every plugin: typed emission, fan-out, one queue and thread per plugin.

- ``HookEmitter``: the one typed way to emit each hook (a method per hook of the specification); it builds
  the ``HookCall`` and hands it to a sink.
- ``Dispatcher``: the sink of a run: fans each call out to every plugin's worker, drains them all at the end.
- ``PluginWorker``: one plugin's bounded queue and worker thread. Tune's thread only calls ``submit``, an
  O(1) enqueue that blocks only while the queue is full (backpressure), up to ``stuck_timeout``, after
  which the plugin is declared stuck and disabled. The worker thread hands the queued calls to the
  plugin's ``Transport``: ``thread_transport`` calls the hooks right there (the default),
  ``process_transport`` sends them to the plugin's own process (``isolate=``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trackbridge.events import CheckpointInfo, ExperimentInfo, LoggedFile, TrialInfo, TrialStatus
from trackbridge.ledger import DeliveryLedger, FirstError, PluginStats
from trackbridge.loading import LoadedPlugin
from trackbridge.thread_transport import ThreadTransport
from trackbridge.transport import (
    EXPERIMENT_END,
    EXPERIMENT_START,
    SETUP,
    TRIAL_CHECKPOINT,
    TRIAL_COMPLETE,
    TRIAL_CONFIG_UPDATE,
    TRIAL_LOG,
    TRIAL_RESULT,
    TRIAL_START,
    DeliveryOptions,
    HookCall,
    Transport,
)

Sink = Callable[[HookCall], None]


class HookEmitter:
    """One method per hook; each builds the ``HookCall`` and hands it to ``sink`` (a dispatcher's ``submit``,
    or a list's ``append`` for a script that is played later)."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def setup(self) -> None:
        self._sink(HookCall(SETUP, {}))

    def experiment_start(self, experiment: ExperimentInfo) -> None:
        self._sink(HookCall(EXPERIMENT_START, {"experiment": experiment}))

    def trial_start(self, trial: TrialInfo, resumed: bool, last_step: int | None) -> None:
        self._sink(HookCall(TRIAL_START, {"trial": trial, "resumed": resumed, "last_step": last_step}, trial.trial_id))

    def trial_config_update(self, trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
        kwargs = {"trial": trial, "step": step, "changes": dict(changes)}
        self._sink(HookCall(TRIAL_CONFIG_UPDATE, kwargs, trial.trial_id))

    def trial_result(
        self, trial: TrialInfo, step: int, metrics: Mapping[str, Any], timestamp: float | None = None
    ) -> None:
        kwargs = {
            "trial": trial,
            "step": step,
            "metrics": metrics,
            "timestamp": time.time() if timestamp is None else timestamp,
        }
        self._sink(HookCall(TRIAL_RESULT, kwargs, trial.trial_id))

    def trial_checkpoint(self, trial: TrialInfo, checkpoint: CheckpointInfo) -> None:
        self._sink(HookCall(TRIAL_CHECKPOINT, {"trial": trial, "checkpoint": checkpoint}, trial.trial_id))

    def trial_log(
        self,
        trial: TrialInfo,
        step: int,
        values: Mapping[str, Any],
        files: Sequence[LoggedFile] = (),
        timestamp: float | None = None,
    ) -> None:
        kwargs = {
            "trial": trial,
            "step": step,
            "values": values,
            "files": tuple(files),
            "timestamp": time.time() if timestamp is None else timestamp,
        }
        self._sink(HookCall(TRIAL_LOG, kwargs, trial.trial_id))

    def trial_complete(self, trial: TrialInfo, status: TrialStatus, error: str | None) -> None:
        self._sink(HookCall(TRIAL_COMPLETE, {"trial": trial, "status": status, "error": error}, trial.trial_id))

    def experiment_end(self, experiment: ExperimentInfo) -> None:
        self._sink(HookCall(EXPERIMENT_END, {"experiment": experiment}))


logger = logging.getLogger("trackbridge")


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
        #: Calls taken off the queue that the transport is delivering right now.
        self._in_hand = 0

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
            if self._thread.ident is None:  # never started: nothing to deliver
                return True
            if not self._finished:  # the thread died without finishing (see _run): release the transport
                self._transport.abort()
            return self._finished
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._queue.put(_Stop(deadline), timeout=timeout)
        except queue.Full:
            self.ledger.disable("drain timed out with a full queue")
            self.ledger.dropped(self._drain_pending())
            self._transport.abort()
            return False
        # The transport finishes by the deadline; a grace period lets it report how far it got.
        left = None if deadline is None else max(0.0, deadline - time.monotonic()) + self._transport.finish_grace
        self._thread.join(left)
        if self._thread.is_alive():
            # the calls still queued, and those in the transport's hands (they may yet arrive: not confirmed)
            pending = self._drain_pending() + self._in_hand
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
        try:
            self._deliver_until_stopped()
        except Exception as exc:  # a transport bug must never leave Tune blocked on a full queue
            logger.exception("trackbridge: the delivery thread of plugin %r crashed", self.plugin.name)
            self.ledger.disable(f"its delivery thread crashed: {type(exc).__name__}: {exc}")
            self.ledger.dropped(self._drain_pending())
            self._transport.abort()

    def _deliver_until_stopped(self) -> None:
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
                    self._in_hand = len(calls)
                    self._transport.deliver(calls)
                    self._in_hand = 0
            last = batch[-1]
            if isinstance(last, _Stop):
                self._finished = self._transport.finish(last.deadline)
                return
            if self._queue.empty():
                self._transport.idle()


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

    def start(self) -> None:
        if not self._started:
            self._started = True
            for worker in self.workers:
                worker.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, call: HookCall) -> None:
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
        for closer in closers:
            closer.start()
        deadline = None if timeout is None else time.monotonic() + timeout + 5.0
        for closer in closers:
            closer.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return {w.plugin.name: results.get(w.plugin.name, False) for w in self.workers}

    def stats(self) -> list[PluginStats]:
        return [w.ledger.stats for w in self.workers]

    def first_error(self) -> FirstError | None:
        for worker in self.workers:
            if worker.ledger.first_error is not None:
                return worker.ledger.first_error
        return None
