"""The TensorBoard plugin's declared options: validated on the user's thread by ``PluginOptions.parse``
(unknown names with a "did you mean", types, checks), stored as plain values (picklable)."""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from typing import Any

from trackbridge import PluginOptions, option
from trackbridge_tensorboard import duplicates


def _local_logdir(value: Any) -> Any:
    """A path as an absolute local directory; a URI is refused (event files are written on the driver).
    Anything else is returned as it is, for the type check to refuse with the option's name."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        return value
    if "://" in value:
        raise ValueError(
            f"logdir must be a local directory, got {value!r} "
            "(TensorBoard event files are written on the driver; sync them yourself)"
        )
    # Resolved when the callback is built, so a restored run writes to the same place.
    return os.path.abspath(os.path.expanduser(value))


def _strip_slashes(value: Any) -> Any:
    return value.strip("/") if isinstance(value, str) else value


def _as_float(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _positive(value: float) -> None:
    if not value > 0:  # NaN is refused too
        raise ValueError(f"must be positive, got {value}")


def _tune_logger_suppressed_in_driver() -> bool:
    """Is Tune's own TensorBoard logger kept off, as far as the driver can tell when it starts a plugin
    process: ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``, or a ``SuppressTuneTBXLogger`` set up or merely alive
    (see ``tune_logger.live_suppressors``; that module imports Ray, and no suppressor exists unless it was
    imported)."""
    if not duplicates.tune_logger_probably_active():
        return True
    tune_logger = sys.modules.get("trackbridge_tensorboard.tune_logger")
    return tune_logger is not None and tune_logger.live_suppressors() > 0


@dataclass(frozen=True)
class TensorBoardOptions(PluginOptions):
    """What ``plugins={"tensorboard": {...}}`` may set (each option's ``doc`` says what it does)."""

    reserved = {
        "tune_logger_suppressed": "TrackBridge decides it in the driver for a plugin in a process of its own; "
        "add SuppressTuneTBXLogger() to the run's callbacks instead",
    }

    logdir: str | None = option(
        None,
        doc="write each trial's run to <logdir>/<trial_name> instead of the trial's own directory in Tune's "
        "storage; a relative path is resolved against the current directory when the callback is built",
        convert=_local_logdir,
    )
    prefix: str | None = option(
        "",
        doc='a tag group put in front of every metric tag: prefix="tune" logs loss as tune/loss; '
        "empty (default): tags are the metric names exactly as reported",
        convert=_strip_slashes,
    )
    flush_secs: float = option(
        2.0,
        doc="how often tensorboardX's own writer thread flushes to disk; TrackBridge also flushes every "
        "writer whenever its queue runs dry, so a running TensorBoard sees data within seconds",
        convert=_as_float,
        check=_positive,
    )
    hparams: bool = option(True, doc="write the HParams record (config, status) of each trial when it ends")
    #: Not an option users give (``reserved``): filled in by ``for_plugin_process`` in the driver.
    tune_logger_suppressed: bool | None = option(
        None,
        doc="set in the driver for a plugin in a process of its own (isolate=), which cannot see the driver's "
        "callbacks: whether Tune's own TensorBoard logger is kept off; None: decided where the plugin runs",
    )

    def __post_init__(self) -> None:
        # ``parse`` converts only values that are not None: prefix=None means no prefix.
        if self.prefix is None:
            object.__setattr__(self, "prefix", "")

    def for_plugin_process(self) -> TensorBoardOptions:
        """These options with ``tune_logger_suppressed`` decided here, in the driver (see ``PluginOptions``)."""
        return dataclasses.replace(self, tune_logger_suppressed=_tune_logger_suppressed_in_driver())

    def tune_logger_active(self) -> bool:
        """Is Tune's own TensorBoard logger most likely writing into the trial directories too? As the driver
        decided for a plugin process of its own (``tune_logger_suppressed``), else as this process knows it
        (``duplicates.tune_logger_probably_active``: the variable, a ``SuppressTuneTBXLogger`` set up)."""
        if self.tune_logger_suppressed is not None:
            return not self.tune_logger_suppressed
        return duplicates.tune_logger_probably_active()

    def tag(self, key: str) -> str:
        """The TensorBoard tag of a metric key."""
        return f"{self.prefix}/{key}" if self.prefix else key
