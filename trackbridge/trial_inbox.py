"""The driver's end of in-trial logging: a Ray actor that receives what trials log, and the collector that
takes it to the callback.

One ``TrialInbox`` actor per driver job (named ``trackbridge-inbox-<job id>``, owned by the driver, no CPU),
created by the first ``TrackBridgeCallback.setup`` of the job and kept for the job's life (one ``fit()`` at a
time uses it: two experiments running at once in one driver would share it); workers on any node find it by name (``trial_logging``). Each
logging process of a trial is a *sender*: it pushes its entries every ``SEND_INTERVAL`` seconds, in order.

End of a trial, exactly: the callback asks the inbox for a flush of that trial (a token); each live sender
sees the token with its next push, pushes everything it holds, and acknowledges the token. Once every sender
of the trial has acknowledged it (or ended, or gone silent for ``STALE_AFTER`` seconds: a dead worker), all
that the trial logged before it ended has arrived, and its run can be completed.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from trackbridge.events import LoggedFile

logger = logging.getLogger("trackbridge")

SEND_INTERVAL = 0.1
#: A sender that has not pushed for this long is taken for dead (its process ended or crashed).
STALE_AFTER = 2.0

#: (trial id, sender id, entries); an entry is (step, values, files as (name, bytes), timestamp).
Entry = tuple[int, dict[str, Any], list[tuple[str, bytes]], float]


def inbox_name() -> str:
    """The inbox of the current Ray job (the driver's and its workers' job id are the same)."""
    import ray

    return f"trackbridge-inbox-{ray.get_runtime_context().get_job_id()}"


class TrialInbox:
    """The actor: holds entries per trial until the driver takes them, and the flush barrier."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, Entry]] = []
        #: trial id -> sender id -> (last push time, acknowledged token, ended)
        self._senders: dict[str, dict[str, list[Any]]] = collections.defaultdict(dict)
        self._flush: dict[str, str] = {}

    def push(self, trial_id: str, sender: str, entries: list[Entry], ack: str | None, ended: bool) -> str | None:
        """Take a sender's entries; returns the flush token the sender must acknowledge, if any."""
        self._entries.extend((trial_id, e) for e in entries)
        state = self._senders[trial_id].setdefault(sender, [0.0, None, False])
        state[0] = time.monotonic()
        if ack is not None:
            state[1] = ack
        state[2] = state[2] or ended
        token = self._flush.get(trial_id)
        return None if ended or token is None or state[1] == token else token

    def request_flush(self, trial_id: str) -> str:
        token = uuid.uuid4().hex
        self._flush[trial_id] = token
        return token

    def flushed(self, trial_id: str, token: str) -> bool:
        """Has every sender of the trial acknowledged ``token``, ended, or gone stale?"""
        now = time.monotonic()
        for last_push, acked, ended in self._senders.get(trial_id, {}).values():
            if not ended and acked != token and now - last_push < STALE_AFTER:
                return False
        return True

    def take(self) -> list[tuple[str, Entry]]:
        entries, self._entries = self._entries, []
        return entries


class InboxCollector:
    """The driver side: creates the inbox, pulls its entries on a thread of its own, hands them over."""

    def __init__(self, files_dir: Callable[[str], str | None]) -> None:
        #: trial id -> the directory where that trial's logged files are written (None: a temporary one).
        self._files_dir = files_dir
        self._inbox: Any = None
        self._ready: collections.deque[tuple[str, int, dict[str, Any], list[LoggedFile], float]] = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Create (or find) the job's inbox and start pulling. Needs Ray to be initialised."""
        self._inbox = _job_inbox()
        self._thread = threading.Thread(target=self._pull_until_stopped, name="trackbridge-inbox", daemon=True)
        self._thread.start()

    def pull_now(self) -> None:
        """Take what the inbox holds now (the end of the run); errors are logged, never raised."""
        if self._inbox is None:
            return
        try:
            self._pull()
        except Exception as exc:
            logger.warning("trackbridge: could not take the last in-trial values: %s: %s", type(exc).__name__, exc)

    def _pull(self, timeout: float | None = None) -> None:
        import ray

        with self._lock:  # one pull at a time, so entries are handed over in the order they arrived
            for trial_id, (step, values, files, timestamp) in ray.get(self._inbox.take.remote(), timeout=timeout):
                self._ready.append((trial_id, step, values, self._write_files(trial_id, files), timestamp))

    def _pull_until_stopped(self) -> None:
        while not self._stop.wait(SEND_INTERVAL * 2):
            try:
                self._pull(timeout=30.0)
            except Exception as exc:
                if type(exc).__name__ in ("RayActorError", "ActorDiedError", "ActorUnavailableError"):
                    # the inbox died with its node: in-trial values stop, tuning goes on
                    logger.warning("trackbridge: in-trial logging stopped: %s: %s", type(exc).__name__, exc)
                    return
                logger.warning("trackbridge: taking in-trial values failed (retrying): %s: %s", type(exc).__name__, exc)

    def _write_files(self, trial_id: str, files: list[tuple[str, bytes]]) -> list[LoggedFile]:
        if not files:
            return []
        directory = self._files_dir(trial_id) or tempfile.mkdtemp(prefix="trackbridge-files-")
        written = []
        for name, data in files:
            target_dir = tempfile.mkdtemp(dir=_ensure(directory))
            path = os.path.join(target_dir, re.sub(r"[\\/]", "_", name) or "file")
            with open(path, "wb") as f:
                f.write(data)
            written.append(LoggedFile(path=path, name=name))
        return written

    def ready(self) -> list[tuple[str, int, dict[str, Any], list[LoggedFile], float]]:
        """Entries pulled so far, in arrival order (taken: each is returned once)."""
        out = []
        while self._ready:
            out.append(self._ready.popleft())
        return out

    def flush_trial(self, trial_id: str, timeout: float) -> bool:
        """Wait until everything ``trial_id`` logged has arrived (see the module docstring), at most
        ``timeout`` seconds; then pull. False on timeout."""
        import ray

        if self._inbox is None:
            return True
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        try:
            token = ray.get(self._inbox.request_flush.remote(trial_id), timeout=left())
            done = False
            while not done and time.monotonic() < deadline:
                done = ray.get(self._inbox.flushed.remote(trial_id, token), timeout=left())
                if not done:
                    time.sleep(SEND_INTERVAL / 2)
            self._pull(timeout=left())
        except Exception as exc:  # the inbox is gone (its node died): never an error in Tune's loop
            logger.warning("trackbridge: in-trial values of trial %s: %s: %s", trial_id, type(exc).__name__, exc)
            return False
        return done

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


_inboxes: dict[str, Any] = {}
_inboxes_lock = threading.Lock()


def _job_inbox() -> Any:
    """The job's inbox actor. Its handle is kept for the life of the driver process: the actor belongs to
    the driver and lives as long as its job, across every ``fit()`` (one at a time) of that job."""
    import ray

    name = inbox_name()
    with _inboxes_lock:
        if name not in _inboxes:
            actor: Any = ray.remote(TrialInbox)
            _inboxes[name] = actor.options(name=name, get_if_exists=True, num_cpus=0).remote()
        return _inboxes[name]


def _ensure(directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    return directory
