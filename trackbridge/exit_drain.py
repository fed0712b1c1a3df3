"""Drain at interpreter exit: a driver that exits without Tune calling ``on_experiment_end`` (``sys.exit``
inside ``fit()``, an uncaught error) still finishes every tracker run and writes its report."""

from __future__ import annotations

import atexit
import logging
import weakref
from typing import Protocol

logger = logging.getLogger("trackbridge")


class Closable(Protocol):
    def close(self) -> object: ...


_live: weakref.WeakSet[Closable] = weakref.WeakSet()


def register(obj: Closable) -> None:
    """Close ``obj`` at interpreter exit unless it was unregistered before."""
    _live.add(obj)


def unregister(obj: Closable) -> None:
    _live.discard(obj)


def live() -> bool:
    """Something is still registered."""
    return len(_live) > 0


def close_all() -> None:
    """Close everything still registered (what the interpreter's exit runs; tests call it too)."""
    for obj in list(_live):
        try:
            obj.close()
        except Exception:  # pragma: no cover - best effort at interpreter exit
            logger.exception("trackbridge: closing at exit failed")


atexit.register(close_all)
