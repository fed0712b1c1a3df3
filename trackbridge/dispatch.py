"""Fan each hook call out to every plugin's worker; drain them all at the end.

One ``PluginWorker`` per plugin (its own bounded queue and thread), delivering in-thread by default or
through a child process for the plugins named in ``isolate``. Tune's thread only calls ``submit``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from trackbridge.calls import HookCall
from trackbridge.ledger import DeliveryLedger, FirstError, PluginStats
from trackbridge.loading import LoadedPlugin
from trackbridge.process_transport import ProcessTransport
from trackbridge.transport import DeliveryOptions
from trackbridge.worker import PluginWorker, thread_worker


def _worker(plugin: LoadedPlugin, options: DeliveryOptions, isolated: bool) -> PluginWorker:
    if not isolated:
        return thread_worker(plugin, options)
    ledger = DeliveryLedger(plugin.name)
    return PluginWorker(plugin, ProcessTransport(plugin, ledger, options), ledger, options)


class Dispatcher:
    """Every plugin's worker, fed from one place."""

    def __init__(
        self,
        plugins: Iterable[LoadedPlugin],
        options: DeliveryOptions | None = None,
        *,
        isolate: Iterable[str] = (),
    ) -> None:
        options = options or DeliveryOptions()
        isolated = set(isolate)
        self.workers = [_worker(plugin, options, plugin.name in isolated) for plugin in plugins]
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
