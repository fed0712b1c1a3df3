"""SIGTERM: how Slurm, Kubernetes and spot reclaims stop a driver. Drain first, then let it end as it would.

While a run is on, TrackBridge's handler sits in front of whatever handled SIGTERM before (Ray's driver
installs one that calls ``sys.exit(15)``; the user may have their own). On SIGTERM it drains every live run
(open trials end UNFINISHED, queues are delivered, the delivery journal and report are written, bounded by
``drain_timeout``), puts the previous handler back, and hands the signal on:

- a previous Python handler is called with the signal (Ray's then exits with code 15);
- the default action: the signal is sent again, so the process ends as a terminated process (-15);
- ``SIG_IGN`` before the run: TrackBridge installs nothing, the user chose to ignore SIGTERM.

Why drain in the handler and not at exit: tracker SDKs tear down at interpreter exit in their own
``atexit`` hooks, which run before TrackBridge's (W&B's service is gone by then). And why a Python handler
at all: Ray's core worker installs a C-level failure handler (absl's) for SIGTERM, which logs "SIGTERM
received", hands the signal to Python's handler, and arms a 3 s ``alarm`` whose handler aborts the process
(exit by SIGABRT) if it is still alive then, which a drain at exit outlasts. Installing this handler
replaces that C-level one while a run is on.

A SIGTERM that arrives while the main thread is already draining (the end of ``fit()``) is handed on once
that drain is done; a second SIGTERM while the first is handled is ignored (the first ends the process).
Only the main thread can install a handler; a run started elsewhere drains at exit as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

logger = logging.getLogger("trackbridge")

_installed = False
_previous: Any = None
_drain: Callable[[], None] | None = None
_drain_wait: float | None = None
#: The handler is running (a second SIGTERM is ignored).
_handling = False
#: How deep the main thread is in a drain (``closing()``), and a SIGTERM that came meanwhile.
_main_closing = 0
_deferred: tuple[int, FrameType | None] | None = None


def install(drain: Callable[[], None], wait: float | None) -> None:
    """Put ``drain`` in front of the current SIGTERM handler (once; main thread only). ``wait``: at most how
    long the handler waits for it (None: as long as it takes)."""
    global _installed, _previous, _drain, _drain_wait
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous == signal.SIG_IGN:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        return
    _installed, _previous, _drain, _drain_wait = True, previous, drain, wait


def uninstall() -> None:
    """Put the previous handler back (when no run is live any more), unless someone replaced ours since."""
    global _installed
    if not _installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, _restorable(_previous))
    except (ValueError, OSError):
        return
    _installed = False


def _restorable(handler: Any) -> Any:
    # getsignal() gives None for a handler installed outside Python (e.g. by a C extension); Python cannot
    # reinstall that one, so the default action stands in for it.
    return signal.SIG_DFL if handler is None else handler


@contextlib.contextmanager
def closing() -> Iterator[None]:
    """Around a drain: a SIGTERM that interrupts it on the main thread waits until it is done."""
    global _main_closing, _deferred
    on_main = threading.current_thread() is threading.main_thread()
    if on_main:
        _main_closing += 1
    try:
        yield
    finally:
        if on_main:
            _main_closing -= 1
            if _main_closing == 0 and _deferred is not None:
                signum, frame = _deferred
                _deferred = None
                _hand_on(signum, frame)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _handling, _deferred
    if _handling:
        logger.warning("trackbridge: SIGTERM received again while draining; the first one ends the process")
        return
    if _main_closing:  # the main thread is draining already: hand the signal on when it is done
        logger.warning("trackbridge: SIGTERM received while draining; the process ends once the drain is done")
        _deferred = (signum, frame)
        return
    _handling = True
    logger.warning("trackbridge: SIGTERM received: draining every tracker before the process ends")
    if _drain is not None:
        # On a thread of its own: the main thread was interrupted anywhere, perhaps holding a lock the drain
        # needs; then the wait ends after ``_drain_wait`` and the signal is handed on all the same.
        drainer = threading.Thread(target=_drain_safely, args=(_drain,), name="trackbridge-sigterm", daemon=True)
        drainer.start()
        drainer.join(_drain_wait)
    try:
        _hand_on(signum, frame)
    finally:
        _handling = False


def _hand_on(signum: int, frame: FrameType | None) -> None:
    """Put the previous handler back and give it the signal (the default action: end as terminated)."""
    previous = _previous
    uninstall()
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _drain_safely(drain: Callable[[], None]) -> None:
    try:
        drain()
    except Exception:  # pragma: no cover - the signal must be handed on whatever happens
        logger.exception("trackbridge: draining on SIGTERM failed")
