"""Keep Comet's console quiet about what the plugin does, without hiding its warnings and errors.

comet_ml prints INFO lines through its own console handler on the ``comet_ml`` logger (which does not
propagate): "Still saving offline stats ...", "Begin archiving the offline data", "To upload this offline
experiment, run: ..." at the end of every experiment, one set per trial. The plugin logs where the archives go
once per Tune experiment instead. The filter drops only records below WARNING emitted on a thread the plugin
registered (its worker thread, while it calls Comet), so a user's own Comet experiments elsewhere in the
process keep printing as usual, and ``COMET_LOGGING_CONSOLE`` still applies on top.

One warning is dropped too: "To get all data logged automatically, import comet_ml before the following
modules: ...", printed at every ``end()`` when a framework was imported before comet_ml (tensorboardX imports
comet_ml, so in a Ray driver it nearly always is). It is about Comet's framework auto-logging, which the
plugin's experiments do not use.
"""

from __future__ import annotations

import logging
import threading

_LOCK = threading.Lock()


class QuietInfo(logging.Filter):
    """Drops comet_ml's records below WARNING (and the ``dropped`` ones) emitted on the registered threads."""

    def __init__(self) -> None:
        super().__init__("trackbridge-comet-quiet")
        self.threads: set[int] = set()
        #: Message templates dropped at any level (see the module docstring).
        self.dropped: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        # Only comet_ml's own records: a handler on the comet_ml logger may be shared with others (pytest's are).
        if record.thread not in self.threads or not (record.name == "comet_ml" or record.name.startswith("comet_ml.")):
            return True
        return record.levelno >= logging.WARNING and record.msg not in self.dropped


_FILTER = QuietInfo()


def quiet_this_thread() -> None:
    """Filter Comet's INFO lines emitted on the calling thread from now on (idempotent)."""
    ident = threading.get_ident()
    if ident in _FILTER.threads:
        return
    with _LOCK:
        from comet_ml import logging_messages

        late_import = getattr(logging_messages, "LATE_IMPORT_DEGRADED_MODE", None)
        if isinstance(late_import, str):
            _FILTER.dropped.add(late_import)
        _FILTER.threads.add(ident)
        for handler in logging.getLogger("comet_ml").handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
