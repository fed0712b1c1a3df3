"""Run a plugin in a process of its own (``TrackBridgeCallback(isolate=[...])``).

Why: a plugin thread in Tune's driver shares the driver's memory and its interpreter lock. A tracker SDK
that is heavy to import (MLflow and SQLAlchemy: ~40-60 MiB) or busy in Python (building protobufs, SQL)
then costs the driver memory and slows Tune's loop at scale. An isolated plugin's SDK is imported and run in
a child process: the driver only pickles events in batches and sends them over a socket.

How: the driver side is a ``PluginWorker`` whose consumer thread, instead of calling hooks, sends batches
of events to the child and waits for each batch to be taken (so backpressure reaches Tune exactly as with a
thread). The child (``python -m trackbridge.isolation``, started with ``subprocess``, so the user's main
module is never re-imported) runs an ordinary ``PluginWorker`` around the plugin: same ordering, flushing,
retries, error isolation and counting. At close the child drains, and its counts come back for the delivery
report. A child that dies is reported, and every event it did not take is counted as dropped.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from trackbridge.dispatch import _STOP, PluginWorker
from trackbridge.loading import LoadedPlugin

logger = logging.getLogger("trackbridge")

BATCH_SIZE = 1000


def _dumps_module() -> Any:
    try:  # cloudpickle carries plugin classes defined in the user's __main__ too
        from ray import cloudpickle

        return cloudpickle
    except ImportError:  # pragma: no cover - Ray is a dependency
        import pickle

        return pickle


class ProcessPluginWorker(PluginWorker):
    """A ``PluginWorker`` whose plugin runs in a child process."""

    def __init__(self, plugin: LoadedPlugin, **options: Any) -> None:
        super().__init__(plugin, **options)
        self._child_options = dict(options)
        self._process: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._child_finished = False

    def start(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "trackbridge.isolation", str(child_sock.fileno())],
            pass_fds=(child_sock.fileno(),),
            env=env,
            stdin=subprocess.DEVNULL,
        )
        child_sock.close()
        self._conn = Connection(parent_sock.detach())
        payload = _dumps_module().dumps((self.plugin.request, self._child_options))
        self._conn.send_bytes(payload)
        super().start()

    # ----------------------------------------------------------------- sender (this side's consumer)
    def _exchange(self, message: Any) -> Any:
        assert self._conn is not None
        self._conn.send(message)
        return self._conn.recv()

    def _child_died(self, exc: BaseException, lost: int) -> None:
        code = None
        if self._process is not None:
            try:
                code = self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
        with self._stats_lock:
            self.stats.dropped += lost + self._drain_pending()
        self._disable(f"its process died ({type(exc).__name__}; exit code {code})")

    def _note_error(self, error: tuple[str, str | None, str] | None) -> None:
        if error and self.first_error is None:
            hook, trial_id, text = error
            self.first_error = (self.plugin.name, hook, trial_id, RuntimeError(text))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while len(batch) < BATCH_SIZE and first is not _STOP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                if item is _STOP:
                    break
            stop = batch[-1] is _STOP
            events = [e for e in batch if e is not _STOP]
            if events and not self._disabled.is_set():
                now = time.monotonic()
                self.stats.max_lag_seconds = max(self.stats.max_lag_seconds, now - events[0].enqueued)
                try:
                    kind, error = self._exchange(("events", [(e.hook, dict(e.kwargs), e.trial_id) for e in events]))
                except (EOFError, OSError) as exc:
                    self._child_died(exc, len(events))
                    continue
                self._note_error(error)
            elif events:
                with self._stats_lock:
                    self.stats.dropped += len(events)
            if stop:
                return

    def close(self, timeout: float | None) -> bool:
        started = time.monotonic()
        finished = super().close(timeout)  # the sender has handed everything over (or gave up)
        remaining = None if timeout is None else max(1.0, timeout - (time.monotonic() - started))
        self._collect(remaining)
        return finished and self._child_finished

    def _collect(self, timeout: float | None) -> None:
        """Ask the child to drain and close, take its counts into ours, and reap it."""
        if self._conn is None or self._process is None:
            return
        try:
            if not self._disabled.is_set() or self._process.poll() is None:
                kind, child_stats, finished, error = self._exchange(("close", timeout))
                self._note_error(error)
                self._child_finished = bool(finished)
                with self._stats_lock:
                    for key in ("delivered", "failed", "retried", "flushes", "busy_seconds"):
                        setattr(self.stats, key, getattr(self.stats, key) + child_stats[key])
                    self.stats.dropped += child_stats["dropped"]
                    self.stats.max_lag_seconds = max(self.stats.max_lag_seconds, child_stats["max_lag_seconds"])
                    for hook, count in child_stats["errors_by_hook"].items():
                        self.stats.errors_by_hook[hook] = self.stats.errors_by_hook.get(hook, 0) + count
                    if child_stats["disabled_reason"] and not self.stats.disabled_reason:
                        self.stats.disabled_reason = child_stats["disabled_reason"]
        except (EOFError, OSError) as exc:
            self._child_died(exc, 0)
        finally:
            self._conn.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)


# --------------------------------------------------------------------------------------- the child
def _error_of(worker: PluginWorker) -> tuple[str, str | None, str] | None:
    if worker.first_error is None:
        return None
    _, hook, trial_id, exc = worker.first_error
    return (hook, trial_id, f"{type(exc).__name__}: {exc}")


def child_main(fd: int) -> int:
    """Run one plugin for the driver on the other end of socket ``fd``."""
    # Ctrl+C in a terminal reaches the whole process group; the driver handles it and drains this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    import pickle

    from trackbridge.loading import resolve

    conn = Connection(fd)
    request, options = pickle.loads(conn.recv_bytes())
    [plugin] = resolve([request])
    worker = PluginWorker(plugin, **options)
    worker.start()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the driver is gone: deliver what we have, then stop
            worker.close(60)
            return 1
        if message[0] == "events":
            for hook, kwargs, trial_id in message[1]:
                worker.submit(hook, kwargs, trial_id)  # blocks while our queue is full: backpressure
            conn.send(("ack", _error_of(worker)))
        elif message[0] == "close":
            finished = worker.close(message[1])
            conn.send(("stats", worker.stats.as_dict(), finished, _error_of(worker)))
            conn.close()
            return 0


if __name__ == "__main__":
    sys.exit(child_main(int(sys.argv[1])))
