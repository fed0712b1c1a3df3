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

The same filter keeps API keys out of Comet's own lines (``mask_keys``): comet_ml logs a refused key in full
("The given API key '<key>' is invalid ...", "Failed to create Comet experiment, reason: InvalidAPIKey('<key>',
...)", with the traceback). Every comet_ml record, on any thread and whatever ``quiet`` says, has each
registered key replaced by ``***`` in its message and traceback before a handler writes it.
"""

from __future__ import annotations

import logging
import threading

from trackbridge_comet.experiments import mask

_LOCK = threading.Lock()
#: Formats a record's traceback to look for keys in it (as a handler's formatter would).
_FORMATTER = logging.Formatter()


class QuietInfo(logging.Filter):
    """Drops comet_ml's records below WARNING (and the ``dropped`` ones) emitted on the registered threads, and
    masks the registered keys in every comet_ml record it lets through."""

    def __init__(self) -> None:
        super().__init__("trackbridge-comet-quiet")
        self.threads: set[int] = set()
        #: Message templates dropped at any level (see the module docstring).
        self.dropped: set[str] = set()
        #: API keys masked in comet_ml's records (longest first).
        self.keys: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        # Only comet_ml's own records: a handler on the comet_ml logger may be shared with others (pytest's are).
        if not (record.name == "comet_ml" or record.name.startswith("comet_ml.")):
            return True
        if record.thread in self.threads and (record.levelno < logging.WARNING or record.msg in self.dropped):
            return False
        if self.keys:
            self._mask(record)
        return True

    def _mask(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            trace = record.exc_text or (_FORMATTER.formatException(record.exc_info) if record.exc_info else "")
        except Exception:  # a record that cannot be formatted: the handler reports that itself
            return
        if any(key in message or key in trace for key in self.keys):
            record.msg, record.args = mask(message, self.keys), None
            if trace:  # the text replaces the exception (a handler would format its arguments again)
                record.exc_text, record.exc_info = mask(trace, self.keys), None


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
        _install()


def mask_keys(keys: list[str]) -> None:
    """Mask each of ``keys`` in comet_ml's log records from now on (any thread)."""
    with _LOCK:
        if any(key not in _FILTER.keys for key in keys):
            _FILTER.keys = sorted(set(_FILTER.keys) | set(keys), key=len, reverse=True)
        _install()


def _install() -> None:
    """The filter on every handler of the comet_ml logger (comet_ml adds them when it is imported)."""
    for handler in logging.getLogger("comet_ml").handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
