"""Run a plugin in a process of its own (``TrackBridgeCallback(isolate=[...])``).

Why: a plugin thread in Tune's driver shares the driver's memory and its interpreter lock. A tracker SDK
that is heavy to import (MLflow and SQLAlchemy: ~40-60 MiB) or busy in Python (building protobufs, SQL)
then costs the driver memory and slows Tune's loop at scale. An isolated plugin's SDK is imported and run in
a child process: the driver only pickles calls in batches and sends them over a socket.

How: on the driver, ``ProcessTransport`` is the transport of an ordinary ``PluginWorker``: the worker thread
sends each batch to the child and waits until it is taken (so backpressure reaches Tune exactly as with a
thread), and at the end asks the child to drain and takes its counts. The worker thread is the only user
of the connection. The child (``python -m trackbridge.process_transport``, started with ``subprocess``, so
the user's main module is never re-imported) runs an ordinary in-thread worker around the plugin: same
ordering, flushing, retries, error isolation and counting. A child that dies is reported, and every call it
did not take is counted as dropped.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from trackbridge.delivery import PluginWorker, TransportFactory, plugin_worker
from trackbridge.driver_program import DriverProgram
from trackbridge.ledger import DeliveryLedger
from trackbridge.loading import LoadedPlugin, process_request, resolve_in_process
from trackbridge.thread_transport import ThreadTransport
from trackbridge.transport import DeliveryOptions, HookCall, Transport

logger = logging.getLogger("trackbridge")

BATCH_SIZE = 1000


def _serializer() -> Any:
    try:  # cloudpickle carries plugin classes defined in the user's __main__ too
        from ray import cloudpickle

        return cloudpickle
    except ImportError:  # pragma: no cover - Ray is a dependency
        return pickle


class ProcessTransport(Transport):
    """The driver's end of an isolated plugin."""

    batch_size = BATCH_SIZE
    finish_grace = 5.0

    def __init__(self, plugin: LoadedPlugin, ledger: DeliveryLedger, options: DeliveryOptions) -> None:
        self._plugin = plugin
        self._ledger = ledger
        self._options = options
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        #: Calls the child took whose outcome it has not reported yet (it reports them when it closes).
        self._unconfirmed = 0

    def start(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "trackbridge.process_transport", str(child_sock.fileno())],
            pass_fds=(child_sock.fileno(),),
            env=env,
            stdin=subprocess.DEVNULL,
        )
        child_sock.close()
        self._conn = Connection(parent_sock.detach())
        # The plugin as the driver holds it, secrets included (``loading.process_request``): over the
        # socket only, never in the child's arguments or environment, never in a file.
        self._conn.send_bytes(_serializer().dumps((process_request(self._plugin), self._options, DriverProgram.here())))

    def deliver(self, calls: Sequence[HookCall]) -> None:
        if self._conn is None:
            self._ledger.dropped(len(calls))
            return
        self._ledger.lag(time.monotonic() - calls[0].emitted)
        payload, sendable = self._pickled(calls)
        if not sendable:
            return
        try:
            self._conn.send_bytes(payload)
            _, error, records = self._conn.recv()
        except (EOFError, OSError) as exc:
            self._child_died(exc, len(sendable))
            return
        self._unconfirmed += len(sendable)
        _log_here(records)
        self._note_error(error)

    def _pickled(self, calls: Sequence[HookCall]) -> tuple[bytes, list[HookCall]]:
        """The batch as bytes; a call whose values cannot be pickled is counted as failed, not sent."""
        dumps = _serializer().dumps
        try:
            return dumps(("calls", list(calls))), list(calls)
        except Exception:
            sendable = []
            for call in calls:
                try:
                    dumps(call)
                except Exception as exc:
                    self._ledger.failed(call.hook, call.trial_id, exc, 0.0)
                    logger.error(
                        "trackbridge: plugin %r: %s for trial %s cannot be sent to its process: %s: %s",
                        self._plugin.name,
                        call.hook,
                        call.trial_id,
                        type(exc).__name__,
                        exc,
                    )
                else:
                    sendable.append(call)
            return dumps(("calls", sendable)), sendable

    def finish(self, deadline: float | None) -> bool:
        """Ask the child to drain and close by ``deadline``, take its counts into ours, and reap it."""
        conn, process = self._conn, self._process
        if conn is None or process is None:
            return False
        finished = False
        try:
            if process.poll() is None:
                timeout = None if deadline is None else max(0.5, deadline - time.monotonic())
                conn.send_bytes(pickle.dumps(("close", timeout)))
                _, child_stats, finished, error, records = conn.recv()
                _log_here(records)
                self._note_error(error)
                self._ledger.merge(child_stats)
                self._unconfirmed = 0
            else:
                self._child_died(RuntimeError("it exited before the end of the run"), 0)
        except (EOFError, OSError) as exc:
            self._child_died(exc, 0)
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if finished:
                # Its plugin has finished and its counts are in: what is left is the interpreter's own exit
                # (the SDKs' exit handlers, up to a second or more), which the drain need not wait for.
                threading.Thread(target=self._reap, args=(process,), name="trackbridge-reap", daemon=True).start()
            else:
                self._reap(process)
        return bool(finished)

    def abort(self) -> None:
        """The drain timed out: kill the child. The calls it took without reporting on them are counted as
        dropped (some may have reached the tracker; none is confirmed)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self._ledger.dropped(self._unconfirmed)
        self._unconfirmed = 0

    def _reap(self, process: subprocess.Popen[bytes]) -> None:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def _child_died(self, exc: BaseException, lost: int) -> None:
        """``lost``: calls of the batch in hand; those the child took earlier were never confirmed either."""
        lost += self._unconfirmed
        self._unconfirmed = 0
        code = None
        if self._process is not None:
            try:
                code = self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._ledger.dropped(lost)
        self._ledger.disable(f"its process died ({type(exc).__name__}; exit code {code})")

    def _note_error(self, error: tuple[str, str | None, str] | None) -> None:
        if error:
            hook, trial_id, text = error
            self._ledger.note_error(hook, trial_id, RuntimeError(text))


def transport_for(isolated: Iterable[str]) -> TransportFactory:
    """The transports of a run: a process for each plugin named in ``isolated``, in-thread for the others."""
    names = frozenset(isolated)

    def make(plugin: LoadedPlugin, ledger: DeliveryLedger, options: DeliveryOptions) -> Transport:
        cls = ProcessTransport if plugin.name in names else ThreadTransport
        return cls(plugin, ledger, options)

    return make


def _log_here(records: list[logging.LogRecord]) -> None:
    """Log what the plugin's process logged through the driver's loggers (and so the user's handlers), as
    if the plugin had run in a thread of the driver."""
    for record in records:
        target = logging.getLogger(record.name)
        if target.isEnabledFor(record.levelno):
            target.handle(record)


# --------------------------------------------------------------------------------------- the child
class _ForwardedLogs(logging.handlers.QueueHandler):
    """The child's log records (WARNING and up, from TrackBridge, the plugin and its SDK), kept until the next
    answer to the driver carries them. ``QueueHandler.prepare`` makes each one picklable (message formatted,
    traceback as text)."""

    def __init__(self) -> None:
        self.records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        super().__init__(self.records)

    def take(self) -> list[logging.LogRecord]:
        taken = []
        while True:
            try:
                taken.append(self.records.get_nowait())
            except queue.Empty:
                return taken


def _error_of(worker: PluginWorker) -> tuple[str, str | None, str] | None:
    if worker.ledger.first_error is None:
        return None
    _, hook, trial_id, exc = worker.ledger.first_error
    return (hook, trial_id, f"{type(exc).__name__}: {exc}")


def child_main(fd: int) -> int:
    """Run one plugin for the driver on the other end of socket ``fd``."""
    # Ctrl+C in a terminal reaches the whole process group; the driver handles it and drains this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # So does a SIGTERM to the process group (Slurm's scancel, a container stop): the driver drains this
    # process first. A child whose driver is gone still ends: it sees the socket close.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    forwarded = _ForwardedLogs()
    forwarded.setFormatter(logging.Formatter("%(message)s"))  # the driver's handlers add their own prefix
    logging.basicConfig(level=logging.WARNING, handlers=[forwarded])
    conn = Connection(fd)
    request, options, driver_program = pickle.loads(conn.recv_bytes())
    driver_program.present()  # trackers record the user's script as the run's source, as in the driver
    plugin = resolve_in_process(request)
    worker = plugin_worker(plugin, options)
    worker.start()
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the driver is gone: deliver what we have, then stop
            logging.getLogger().addHandler(logging.StreamHandler())  # nobody takes the records any more
            for record in forwarded.take():
                sys.stderr.write(record.getMessage() + "\n")
            worker.close(60)
            return 1
        if message[0] == "calls":
            for call in message[1]:
                worker.submit(call)  # blocks while our queue is full: backpressure
            conn.send(("ack", _error_of(worker), forwarded.take()))
        elif message[0] == "close":
            finished = worker.close(message[1])
            conn.send(("stats", worker.ledger.stats.as_dict(), finished, _error_of(worker), forwarded.take()))
            conn.close()
            return 0


if __name__ == "__main__":
    sys.exit(child_main(int(sys.argv[1])))
