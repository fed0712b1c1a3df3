"""TrackBridgeTrainCallback: the thin Ray Train V2 adapter. A plain ``fit()`` (no Tune) tracked by the plugins.

    trainer = TorchTrainer(train_func, run_config=ray.train.RunConfig(
        callbacks=[TrackBridgeTrainCallback(plugins=["wandb", "mlflow", "tensorboard"])]))

Train pickles the callback into its controller actor (on the driver's node); every hook below runs there, on
the controller's event loop, and only translates (``train_translate``) and feeds the ``TrialStateMachine`` of
its ``Bridge``: the tracker I/O happens on the plugins' own threads in the controller process. One Train run is
one experiment with one trial, so one run per tracker; see ``docs/ray-train.md``.

Why a DeveloperAPI: ``ray.train.UserCallback``, the public callback, has only ``after_report`` and
``after_exception``: no start, no end, no abort, so a run that succeeds, or is aborted, could never be ended in
the trackers (ray-project/ray#64252). Ray 2.60 has no public way, so this class is a ``ControllerCallback``
(``after_controller_start``, ``after_controller_finish``, ``before_controller_abort``) and a ``ReportCallback``
(``after_report``) from ``ray.train.v2._internal.execution.callback``: Train's ``DataParallelTrainer`` hands
every ``RunConfig.callbacks`` entry that is not a ``UserCallback`` to its controller as is, and the controller
calls these hooks. It must *not* be a ``UserCallback``: those are called only through Train's
``UserCallbackHandler``, which forwards nothing but the two public hooks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

try:  # No public import path exists for these (see the module docstring): Ray 2.60 has them only here.
    from ray.train.v2._internal.execution.callback import ControllerCallback, ReportCallback
except ImportError as exc:  # pragma: no cover - depends on the installed Ray
    raise ImportError(
        "trackbridge: TrackBridgeTrainCallback needs Ray Train V2's controller callbacks "
        "(ray.train.v2._internal.execution.callback, as in Ray 2.60); this Ray has none"
    ) from exc

from trackbridge import loading
from trackbridge.bridge import Bridge
from trackbridge.events import TrialInfo, TrialStatus
from trackbridge.train_translate import end_status, experiment_info, report_metrics, report_step, trial_info

logger = logging.getLogger("trackbridge")


class TrackBridgeTrainCallback(ControllerCallback, ReportCallback):
    """One Ray Train V2 callback for every experiment tracker: ``ray.train.RunConfig(callbacks=[...])``.

    Each ``fit()`` becomes one run in each tracker: ``train_loop_config`` as its parameters, every
    ``ray.train.report`` as a row (step = the report count, or rank 0's ``training_iteration`` when it reports
    an int), every reported checkpoint as a checkpoint event, and its end as completed, failed (with the error
    text) or unfinished (the run was aborted, e.g. Ctrl+C).

    :param plugins: which trackers, as for ``TrackBridgeCallback``: names, a dict of names to options, plugin
        objects, or a mix. Options that are secrets (API keys, tokens, credentials in URIs) never travel to
        Train's controller (a warning says which): give them to it through the environment.
    :param rank_zero_only: True (default): rank 0's metrics only. False: every rank's metrics, each key
        prefixed with ``rank_<n>/`` (``rank_0/loss``, ``rank_1/loss``).
    :param excludes: metric names (flattened with ``/``, glob patterns allowed) never passed to plugins.
    :param redact: as for ``TrackBridgeCallback``: config keys whose values are replaced before any plugin sees
        them (True: TrackBridge's list; a list: those patterns too; False: none).
    :param queue_size: as for ``TrackBridgeCallback``.
    :param flush_interval: as for ``TrackBridgeCallback``.
    :param drain_timeout: as for ``TrackBridgeCallback``: bounds how long the end of ``fit()`` waits for the
        trackers.
    :param stuck_timeout: as for ``TrackBridgeCallback``.
    :param max_retries: as for ``TrackBridgeCallback``.
    :param retry_backoff: as for ``TrackBridgeCallback``.
    :param isolate: as for ``TrackBridgeCallback``.
    :param fail_fast: the first plugin failure fails the Train run (at its next report). Off by default:
        tracking never fails training.
    """

    def __init__(
        self,
        plugins: loading.PluginsArgument,
        *,
        rank_zero_only: bool = True,
        excludes: Iterable[str] = (),
        redact: bool | Sequence[str] = True,
        queue_size: int = 10_000,
        flush_interval: float = 0.5,
        drain_timeout: float | None = 600.0,
        stuck_timeout: float = 300.0,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        fail_fast: bool = False,
        isolate: bool | str | Iterable[str] = "auto",
    ) -> None:
        self._bridge = Bridge(
            plugins,
            excludes=excludes,
            redact=redact,
            queue_size=queue_size,
            flush_interval=flush_interval,
            drain_timeout=drain_timeout,
            stuck_timeout=stuck_timeout,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            fail_fast=fail_fast,
            isolate=isolate,
        )
        self.rank_zero_only = bool(rank_zero_only)
        #: The run being tracked (set in the controller at its start).
        self._trial: TrialInfo | None = None
        _warn_secrets_left_behind(self._bridge.plugins())

    # ------------------------------------------------------------------ plugins
    @property
    def plugin_names(self) -> list[str]:
        return [p.name for p in self._bridge.plugins()]

    def get_plugin(self, name: str) -> Any:
        """The plugin object registered under ``name``. The plugins that run are copies in Train's controller;
        this is the driver's (unused) one."""
        return self._bridge.get_plugin(name)

    @property
    def report(self) -> dict[str, Any] | None:
        """The delivery report, in the controller process only; read ``trackbridge_report.json`` in the run's
        storage directory instead (the driver's copy of the callback never runs)."""
        return self._bridge.report

    # ------------------------------------------------------------------ Train's controller hooks
    @contextlib.contextmanager
    def _guard(self, hook: str) -> Iterator[None]:
        """A bug or an unloadable plugin in the controller never fails training (unless ``fail_fast``)."""
        try:
            yield
        except Exception:
            if self._bridge.settings.fail_fast:
                raise
            logger.exception("trackbridge: %s failed in Ray Train's controller; training goes on", hook)

    def after_controller_start(self, train_run_context: Any) -> None:
        with self._guard("after_controller_start"):
            if self._bridge.finished:  # defensive: Train builds a fresh copy of the callback per controller
                self._bridge.reset()
            machine = self._bridge.start()  # plugins' workers + trackbridge_setup; the exit drain registered
            experiment = experiment_info(train_run_context)
            machine.begin_experiment(experiment)
            s = self._bridge.settings
            trial = trial_info(train_run_context, experiment, s.redact_extra, s.redact_enabled)
            machine.start(trial)
            self._trial = trial

    def after_report(self, training_report: Any, metrics: list[dict[str, Any]]) -> None:
        """All ranks reported (``metrics[n]`` is rank n's dict); ``training_report.checkpoint`` is the persisted
        checkpoint, if any."""
        machine, trial = self._bridge.machine, self._trial
        if machine is None or trial is None or self._bridge.finished:
            return
        self._bridge.check_fail_fast()  # raises TrackerFailure (fail_fast=True): Train fails the run
        with self._guard("after_report"):
            s = self._bridge.settings
            values = report_metrics(metrics, rank_zero_only=self.rank_zero_only, excludes=s.excludes)
            machine.result(trial.trial_id, report_step(metrics), values)
            checkpoint = getattr(training_report, "checkpoint", None)
            if checkpoint is not None:
                machine.checkpoint(trial.trial_id, str(checkpoint.path), getattr(checkpoint, "filesystem", None))

    def after_controller_finish(self, result: Any) -> None:
        """The run ended, succeeded or failed for good (retries exhausted); ``fit()`` returns after this."""
        with self._guard("after_controller_finish"):
            status, error = end_status(result)
            self._end(status, error)

    def before_controller_abort(self) -> None:
        """Ctrl+C on the driver (Train's graceful abort): the run ends unfinished; the controller exits next."""
        with self._guard("before_controller_abort"):
            self._end(TrialStatus.UNFINISHED, None)

    def _end(self, status: TrialStatus, error: str | None) -> None:
        machine, trial = self._bridge.machine, self._trial
        if machine is not None and trial is not None and not self._bridge.finished:
            machine.complete(trial, status, error)
        self._bridge.close()  # drain every plugin, write trackbridge_report.json; idempotent


def _warn_secrets_left_behind(plugins: Sequence[loading.LoadedPlugin]) -> None:
    """Train pickles the callback into its controller, and TrackBridge never pickles a secret: say which
    plugins reach the controller without some of their options."""
    for plugin in plugins:
        request = plugin.request
        if isinstance(request, tuple):
            lost = dict(request[1] or {}) != loading.picklable_request(plugin)[1]
        else:
            options = getattr(plugin.obj, "options", None)
            without = getattr(options, "without_secrets", None)
            lost = callable(without) and without() != options
        if lost:
            logger.warning(
                "trackbridge: plugin %r was given secret options (keys, tokens, credentials in URIs); they are "
                "never pickled, so Ray Train's controller gets the plugin without them. Give them to the "
                "controller through its environment instead (e.g. WANDB_API_KEY, MLFLOW_TRACKING_TOKEN set "
                "before ray.init(), or ray.init(runtime_env={'env_vars': {...}})) or a key file.",
                plugin.name,
            )
