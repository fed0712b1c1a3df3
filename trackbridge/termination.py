"""SIGTERM: how Slurm, Kubernetes and spot reclaims stop a driver. Drain first, then let it end as it would.

While a run is on, TrackBridge's handler sits in front of whatever handled SIGTERM before (Ray's driver
installs one that calls ``sys.exit(15)``; the user may have their own). On SIGTERM it drains every live run
(open trials end UNFINISHED, queues are delivered, the delivery journal and report are written, bounded by
``drain_timeout``), puts the previous handler back, and hands the signal on:

- a previous Python handler is called with the signal (Ray's then exits with code 15);
- the default action: the signal is sent again, so the process ends as a terminated process (-15);
- ``SIG_IGN`` before the run: TrackBridge installs nothing, the user chose to ignore SIGTERM.

Why drain in the handler and not at exit: tracker SDKs tear down at interpreter exit in their own
``atexit`` hooks, which run before TrackBridge's (W&B's service is gone by then), and Ray's C++ failure
handler, which logs "SIGTERM received", arms a 3 s ``alarm`` whose handler aborts the process (exit by
SIGABRT) if it is still alive; draining happens before any of that, and the handler cancels that alarm.
Only the main thread can install a handler; a run started elsewhere drains at exit as before.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger("trackbridge")

_installed = False
_previous: Any = None
_drain: Callable[[], None] | None = None
_drain_wait: float | None = None


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


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _cancel_failure_alarm()
    previous = _previous
    logger.warning("trackbridge: SIGTERM received: draining every tracker before the process ends")
    if _drain is not None:
        # On a thread of its own: the main thread was interrupted anywhere, perhaps holding a lock the drain
        # needs; then the wait ends after ``_drain_wait`` and the signal is handed on all the same.
        drainer = threading.Thread(target=_drain_safely, args=(_drain,), name="trackbridge-sigterm", daemon=True)
        drainer.start()
        drainer.join(_drain_wait)
    uninstall()
    if callable(previous):
        previous(signum, frame)
        return
    # The default action: end as a process terminated by SIGTERM does.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _drain_safely(drain: Callable[[], None]) -> None:
    try:
        drain()
    except Exception:  # pragma: no cover - the signal must be handed on whatever happens
        logger.exception("trackbridge: draining on SIGTERM failed")


def _cancel_failure_alarm() -> None:
    """Cancel an alarm armed by a C-level failure handler (Ray's absl handler arms ``alarm(3)`` on SIGTERM and
    aborts when it rings); an alarm whose SIGALRM handler is Python's own is the user's, and is kept."""
    if not hasattr(signal, "alarm"):
        return
    if signal.getsignal(signal.SIGALRM) is None:  # SIGALRM is handled outside Python: not the user's alarm
        signal.alarm(0)
