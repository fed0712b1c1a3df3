"""What travels to a plugin (``HookCall``) and the small interface both deliveries implement (``Transport``).

- ``thread_transport.ThreadTransport``: calls the plugin's hooks on the worker's own thread (the default).
- ``process_transport.ProcessTransport``: sends them, in batches, to the plugin running in a child
  process (``isolate=``), which delivers them with a ``ThreadTransport`` of its own.

The worker (``delivery.PluginWorker``) owns the queue, the thread and the backpressure; every method below
is called on the worker's thread only, one at a time, so a transport needs no locks of its own.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trackbridge import hookspecs

#: The hook names, taken from the specification's own functions (never typed by hand).
SETUP = hookspecs.trackbridge_setup.__name__
EXPERIMENT_START = hookspecs.trackbridge_experiment_start.__name__
TRIAL_START = hookspecs.trackbridge_trial_start.__name__
TRIAL_CONFIG_UPDATE = hookspecs.trackbridge_trial_config_update.__name__
TRIAL_RESULT = hookspecs.trackbridge_trial_result.__name__
TRIAL_CHECKPOINT = hookspecs.trackbridge_trial_checkpoint.__name__
TRIAL_LOG = hookspecs.trackbridge_trial_log.__name__
TRIAL_COMPLETE = hookspecs.trackbridge_trial_complete.__name__
FLUSH = hookspecs.trackbridge_flush.__name__
EXPERIMENT_END = hookspecs.trackbridge_experiment_end.__name__


@dataclass(frozen=True)
class HookCall:
    """One hook call on its way to a plugin: the hook, its keyword arguments, the trial it concerns.

    Picklable (a plugin may run in a process of its own), and checked against the specification.
    """

    hook: str
    kwargs: Mapping[str, Any]
    trial_id: str | None = None
    #: ``time.monotonic()`` when it was emitted (for the lag in the delivery report).
    emitted: float = field(default_factory=time.monotonic, compare=False)
    #: A ``trial_config_update`` marking a branch: the trial continues from another trial's checkpoint (PBT),
    #: so its steps may go back (see ``journal``). Not passed to the plugin.
    branch: bool = False
    #: For ``experiment_start``: how each plugin's delivery journal treats the experiment (``journal.LIVE``,
    #: ``FILL`` or ``IGNORE``). Not passed to the plugin.
    journal_mode: str = "live"

    def __post_init__(self) -> None:
        if self.hook not in hookspecs.ALL_HOOKS:
            raise ValueError(
                f"trackbridge: {self.hook!r} is not a hook of the specification ({', '.join(hookspecs.ALL_HOOKS)})"
            )


@dataclass(frozen=True)
class DeliveryOptions:
    """How each plugin's events are queued and delivered (the callback's options of the same names)."""

    queue_size: int = 10_000
    flush_interval: float = 0.5
    stuck_timeout: float = 300.0
    max_retries: int = 3
    retry_backoff: float = 0.5
    #: After this many failed calls in a row the plugin is disabled for the rest of the run.
    max_consecutive_failures: int = 100


class Transport(ABC):
    """Delivers the calls of one plugin, in order."""

    #: How many queued calls the worker may hand over in one ``deliver``.
    batch_size: int = 1
    #: Seconds past the drain deadline that ``finish`` may take to report how far it got.
    finish_grace: float = 0.0

    def start(self) -> None:
        """Prepare (e.g. start a child process); called on the caller's thread before the worker starts."""

    @abstractmethod
    def deliver(self, calls: Sequence[HookCall]) -> None:
        """Deliver ``calls`` in order; count every outcome in the ledger; never raise."""

    def flush_due(self) -> float | None:
        """``time.monotonic()`` at which ``flush`` should run if no call arrives before (None: never)."""
        return None

    def flush(self) -> None:
        """The queue stayed empty until ``flush_due``: write what is buffered."""

    def idle(self) -> None:
        """The queue is empty after a ``deliver``: flush if it is time."""

    @abstractmethod
    def finish(self, deadline: float | None) -> bool:
        """Every call has been delivered: flush, finish, collect counts. False if not finished by
        ``deadline`` (a ``time.monotonic()`` value, None: no limit)."""

    def abort(self) -> None:
        """The drain timed out while ``deliver`` or ``finish`` still runs: release what can be released."""
