"""``Bridge``: the plugins of one adapter and, while a run is on, their dispatcher, trial state machine and report.

Every adapter (the Tune callback, the Ray Train callback) owns one, so plugin resolution, pickling into
``tuner.pkl`` (secrets stripped), the exit drain, ``fail_fast`` and the delivery report work the same way
for each. The adapter only translates its framework's objects and feeds ``bridge.machine``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from trackbridge import exit_drain, loading, termination
from trackbridge.checkpoint_pins import CheckpointPins
from trackbridge.delivery import Dispatcher
from trackbridge.emitter import HookEmitter
from trackbridge.errors import TrackerFailure
from trackbridge.process_transport import transport_for
from trackbridge.report import REPORT_FILE, write_report
from trackbridge.settings import CallbackSettings, isolated_names, parse_settings
from trackbridge.trial_inbox import InboxCollector
from trackbridge.trial_states import TrialStateMachine

logger = logging.getLogger("trackbridge")


class Bridge:
    """Resolved plugins plus the runtime of the current run (see the module docstring)."""

    def __init__(self, plugins: loading.PluginsArgument, **options: Any) -> None:
        """``options``: the adapter's own options (``settings.parse_settings`` validates them)."""
        self._loaded: list[loading.LoadedPlugin] | None = loading.resolve(plugins)
        self._requests = [p.request for p in self._loaded]
        self.settings: CallbackSettings = parse_settings([p.name for p in self._loaded], **options)
        self.reset()

    def reset(self) -> None:
        """Forget the current run (a second ``fit()`` with the same adapter starts from a clean slate)."""
        self._dispatcher: Dispatcher | None = None
        #: Local checkpoints hard-linked when reported, until every plugin taking checkpoints has passed them.
        self._pins: CheckpointPins | None = None
        self.machine: TrialStateMachine | None = None
        self.report: dict[str, Any] | None = None
        self._inbox: InboxCollector | None = None
        #: Trials whose in-trial values did not all arrive before their end (``log_drain_timeout``).
        self.log_timeouts = 0

    # ------------------------------------------------------------------ pickling (tuner.pkl, Train's controller)
    def __getstate__(self) -> dict[str, Any]:
        if self._loaded is not None:
            requests = [loading.picklable_request(p) for p in self._loaded]
        else:  # unpickled and not resolved again: the requests are the clean ones that were pickled
            requests = list(self._requests)
        return {"requests": requests, "settings": self.settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._requests = state["requests"]
        self.settings = state["settings"]
        self._loaded = None  # resolved again where the run starts, where a missing SDK or key is reported
        self.reset()

    # ------------------------------------------------------------------ plugins
    def plugins(self) -> list[loading.LoadedPlugin]:
        if self._loaded is None:
            self._loaded = loading.resolve(list(self._requests))
        return self._loaded

    def get_plugin(self, name: str) -> Any:
        for plugin in self.plugins():
            if plugin.name == name:
                return plugin.obj
        names = [p.name for p in self.plugins()]
        raise KeyError(f"trackbridge: no plugin {name!r} in this callback; it has {names}")

    def companion_callbacks(self) -> list[Any]:
        extra: list[Any] = []
        for plugin in self.plugins():
            companions = getattr(plugin.obj, "companion_callbacks", None)
            if callable(companions):
                extra.extend(companions())
        return extra

    # ------------------------------------------------------------------ the run
    @property
    def finished(self) -> bool:
        """A run was started and has been closed."""
        return self._dispatcher is not None and self._dispatcher.closed

    def start(self, restored: Mapping[str, Any] | None = None, journal_mode: str = "live") -> TrialStateMachine:
        """The state machine of the current run; starts the plugins' workers (and ``trackbridge_setup``) on
        first use. ``restored``: the machine's snapshot from a restored experiment; ``journal_mode``: how the
        plugins' delivery journals treat the experiment (``journal.LIVE``, a replay's ``FILL`` or ``IGNORE``)."""
        if self.machine is None:
            dispatcher = Dispatcher(
                self.plugins(),
                self.settings.delivery,
                transport_for=transport_for(isolated_names(self.settings, self.plugins())),
            )
            dispatcher.start()
            self._pins = CheckpointPins.for_plugins(self.plugins())
            emit = HookEmitter(self._pins.sink(dispatcher.submit), journal_mode)
            emit.setup()
            self._dispatcher, self.machine = dispatcher, TrialStateMachine(emit)
            if restored is not None:
                self.machine.restore(restored)
            exit_drain.register(self)
            drain = self.settings.drain_timeout
            termination.install(exit_drain.close_all, None if drain is None else drain + 30.0)
        return self.machine

    # ------------------------------------------------------------------ values logged inside trials
    def listen_for_trial_logs(self) -> None:
        """Open the job's inbox for ``trackbridge.log`` in trials (needs Ray initialised)."""
        if self._inbox is None:
            inbox = InboxCollector(self._files_dir)
            try:
                inbox.start()
            except Exception as exc:  # tracking never stops tuning: results still flow, in-trial values do not
                logger.warning(
                    "trackbridge: logging from inside trials is unavailable: %s: %s", type(exc).__name__, exc
                )
                return
            self._inbox = inbox

    def _files_dir(self, trial_id: str) -> str | None:
        state = self.machine.trials.get(trial_id) if self.machine is not None else None
        local = state.info.local_path if state is not None else None
        return os.path.join(local, "trackbridge_files") if local else None

    def deliver_trial_logs(self) -> None:
        """Hand the in-trial values that arrived so far to the plugins (O(values); no waiting)."""
        if self._inbox is None or self.machine is None:
            return
        for trial_id, step, values, files, timestamp in self._inbox.ready():
            self.machine.log(trial_id, step, values, files, timestamp)

    def finish_trial_logs(self, trial_id: str) -> None:
        """Before a trial completes: wait until all it logged has arrived (at most ``log_drain_timeout``)."""
        if self._inbox is None:
            return
        if not self._inbox.flush_trial(trial_id, self.settings.log_drain_timeout):
            self.log_timeouts += 1
            logger.warning(
                "trackbridge: values logged in trial %s did not all arrive within %.0fs; later ones are counted "
                "as late",
                trial_id,
                self.settings.log_drain_timeout,
            )
        self.deliver_trial_logs()

    def check_fail_fast(self) -> None:
        """With ``fail_fast=True``: raise ``TrackerFailure`` for the first plugin failure so far."""
        if not self.settings.fail_fast or self._dispatcher is None:
            return
        failure = self._dispatcher.first_error()
        if failure is not None:
            plugin, hook, trial_id, exc = failure
            where = f" for trial {trial_id}" if trial_id else ""
            raise TrackerFailure(
                f"trackbridge: plugin {plugin!r} failed in {hook}{where}: {type(exc).__name__}: {exc} "
                "(fail_fast=True stops the run)"
            ) from exc

    def close(
        self, report_file: str = REPORT_FILE, report_extra: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """End every open trial as UNFINISHED, end the experiment, drain and close every plugin, write the
        delivery report (as ``report_file``, with ``report_extra``'s sections). Called by the adapter at the run's
        end; also by an exit hook if that never comes (and a SIGTERM handler); a SIGTERM that interrupts it is
        handed on once it is done."""
        with termination.closing():
            return self._close(report_file, report_extra)

    def _close(
        self, report_file: str = REPORT_FILE, report_extra: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        dispatcher, machine = self._dispatcher, self.machine
        if dispatcher is None or machine is None or dispatcher.closed:
            return self.report
        if self._inbox is not None:  # what arrived; trials still open end UNFINISHED, no waiting for them
            self._inbox.stop()
            self._inbox.pull_now()
            self.deliver_trial_logs()
        machine.end_experiment()
        started = time.monotonic()
        finished = dispatcher.close(self.settings.drain_timeout)
        if self._pins is not None:  # the pins a stuck plugin still holds
            self._pins.close()
        exit_drain.unregister(self)
        if not exit_drain.live():
            termination.uninstall()
        self.report = write_report(
            experiment=machine.experiment,
            stats=dispatcher.stats(),
            finished=finished,
            drain_seconds=time.monotonic() - started,
            skipped_replays=machine.skipped_replays,
            late_trial_logs=machine.late_logs,
            unpinned_checkpoints=self._pins.unpinned if self._pins is not None else 0,
            file_name=report_file,
            extra=report_extra,
        )
        return self.report
