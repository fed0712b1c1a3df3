"""Logging from inside a trial: ``trackbridge.log``, ``trackbridge.log_artifact``, ``trackbridge.get_logger``.

    def train_fn(config):                      # a Tune function trainable
        for epoch in range(10):
            for batch in ...:
                trackbridge.log({"batch_loss": loss})          # its own step: 1, 2, 3, ...
            tune.report({"loss": epoch_loss})

The values go to the driver over Ray (the job's ``TrialInbox`` actor, any node), where
``TrackBridgeCallback`` hands them to every plugin (``trackbridge_trial_log``) for the same run as the
trial's results. No tracker SDK and no credential is needed here. A call only appends to a local buffer; a
thread sends the buffer every 0.1 s, in order. When the trial ends, the driver waits until everything it
logged has arrived (see ``trial_inbox``) before it completes the trial's runs.

- Function trainables: ``trackbridge.log`` finds its trial through ``ray.tune.get_context()``.
- Class trainables: ``logger = trackbridge.get_logger(self)`` in ``setup``, then ``logger.log(...)``.
- Ray Train workers inside a Tune trial: Ray Train V2 gives workers no Tune context, so take the logger in
  the trial (``get_logger()``), pass it in ``train_loop_config``, and call ``logger.log`` in the workers.
  Only rank 0 sends by default; ``get_logger(rank_zero_only=False)`` sends every rank, keys prefixed with
  ``rank_<n>/``.

Nothing here ever raises into training code: outside a trial, or when no ``TrackBridgeCallback`` is
listening, a call warns once and does nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

from trackbridge.values import flatten

logger = logging.getLogger("trackbridge")

#: ``log_artifact`` sends the file's bytes through Ray; larger files are refused (with a warning).
MAX_FILE_BYTES = 64 * 1024 * 1024
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning("trackbridge: %s", message)


class _Sender:
    """One process's channel for one trial: a buffer and the thread that sends it to the inbox."""

    def __init__(self, trial_id: str, inbox: Any, owner: threading.Thread) -> None:
        self.trial_id = trial_id
        self.id = uuid.uuid4().hex
        self._inbox = inbox
        self._owner = owner
        self._buffer: list[Any] = []
        self._lock = threading.Lock()
        self._counter = 0
        self._ack: str | None = None
        #: True once the thread stopped (its owner ended, or the driver is gone): a new sender takes over.
        self.ended = False
        import ray

        ray.get(inbox.push.remote(trial_id, self.id, [], None, False))  # registered before the first value
        threading.Thread(target=self._run, name=f"trackbridge-send-{trial_id}", daemon=True).start()

    def next_step(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def add(self, entry: Any) -> None:
        with self._lock:
            self._buffer.append(entry)

    def _send(self, ended: bool) -> str | None:
        import ray

        with self._lock:
            entries, self._buffer = self._buffer, []
        ack, self._ack = self._ack, None
        token: str | None = ray.get(self._inbox.push.remote(self.trial_id, self.id, entries, ack, ended))
        return token

    def _run(self) -> None:
        from trackbridge.trial_inbox import SEND_INTERVAL

        while True:
            ended = not self._owner.is_alive()
            try:
                token = self._send(ended)
                if token is not None:  # the trial ended on the driver: send what is left, say so, and stop
                    self._ack = token
                    self._send(True)
                    ended = True
            except Exception as exc:  # the driver is gone, or a value Ray cannot serialise: stop sending
                _warn_once("sender", f"in-trial values of trial {self.trial_id} can no longer be sent: {exc}")
                self.ended = True
                return
            if ended:
                self.ended = True
                return
            self._owner.join(SEND_INTERVAL)  # wakes at once when the owner ends: its last values go right away


_senders: dict[str, _Sender] = {}
_senders_lock = threading.Lock()
#: When no inbox was found, the next lookup waits this long (a call must stay cheap with nobody listening).
_NO_INBOX_RETRY = 10.0
_no_inbox_until = 0.0


def _sender(trial_id: str) -> _Sender | None:
    with _senders_lock:
        global _no_inbox_until
        sender = _senders.get(trial_id)
        if sender is not None and not sender.ended:
            return sender
        if time.monotonic() < _no_inbox_until:
            return None
        try:
            import ray

            from trackbridge.trial_inbox import inbox_name

            inbox = ray.get_actor(inbox_name())
        except Exception:
            _no_inbox_until = time.monotonic() + _NO_INBOX_RETRY
            _warn_once("no-inbox", "trackbridge.log: no TrackBridgeCallback is listening; values are not logged")
            return None
        sender = _senders[trial_id] = _Sender(trial_id, inbox, threading.current_thread())
        return sender


def _world_rank() -> int | None:
    """The Ray Train worker's rank, or None outside Ray Train workers."""
    try:
        import ray.train

        return int(ray.train.get_context().get_world_rank())
    except Exception:
        return None


class TrialLogger:
    """Logs values and files into one trial's runs. Picklable: pass it to Ray Train workers."""

    def __init__(self, trial_id: str | None, rank_zero_only: bool = True) -> None:
        self.trial_id = trial_id
        self.rank_zero_only = rank_zero_only

    def _target(self) -> tuple[_Sender, str] | None:
        if self.trial_id is None:
            _warn_once(
                "no-trial", "trackbridge.log: not inside a Tune trial, nothing is listening; values are not logged"
            )
            return None
        rank = _world_rank()
        if rank is not None and rank != 0 and self.rank_zero_only:
            return None
        sender = _sender(self.trial_id)
        if sender is None:
            return None
        return sender, ("" if rank is None or self.rank_zero_only else f"rank_{rank}/")

    def log(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Log ``values`` (nested dicts are flattened with ``/``) at ``step`` (default: the next one)."""
        try:
            target = self._target()
            if target is None:
                return
            sender, prefix = target
            flat = {f"{prefix}{k}": v for k, v in flatten(dict(values)).items()}
            sender.add((sender.next_step() if step is None else int(step), flat, [], time.time()))
        except Exception as exc:  # never into training code
            _warn_once("log-error", f"trackbridge.log failed: {type(exc).__name__}: {exc}")

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        """Log a file (up to ``MAX_FILE_BYTES``) under ``name`` (default: its own name)."""
        try:
            target = self._target()
            if target is None:
                return
            sender, prefix = target
            size = os.path.getsize(path)
            if size > MAX_FILE_BYTES:
                _warn_once(
                    f"big:{path}", f"log_artifact: {path} has {size} bytes, more than {MAX_FILE_BYTES}; not sent"
                )
                return
            with open(path, "rb") as f:
                data = f.read()
            label = prefix + (name or os.path.basename(os.fspath(path)))
            sender.add((sender.next_step(), {}, [(label, data)], time.time()))
        except Exception as exc:
            _warn_once("artifact-error", f"trackbridge.log_artifact failed: {type(exc).__name__}: {exc}")

    def __repr__(self) -> str:
        return f"TrialLogger(trial_id={self.trial_id!r}, rank_zero_only={self.rank_zero_only})"


def _current_trial_id() -> str | None:
    try:
        import ray.tune

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial_id = ray.tune.get_context().get_trial_id()
        return str(trial_id) if trial_id else None
    except Exception:
        return None


def get_logger(trainable: Any = None, *, rank_zero_only: bool = True) -> TrialLogger:
    """The logger of the current trial: in a function trainable without arguments; in a class trainable
    ``get_logger(self)``. Pass it to Ray Train workers (``train_loop_config``) to log from there."""
    trial_id = getattr(trainable, "trial_id", None) if trainable is not None else _current_trial_id()
    return TrialLogger(str(trial_id) if trial_id else None, rank_zero_only)


def log(values: Mapping[str, Any], step: int | None = None) -> None:
    """Log ``values`` into the current trial's runs (see the module docstring)."""
    get_logger().log(values, step)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> None:
    """Log a file into the current trial's runs."""
    get_logger().log_artifact(path, name)
