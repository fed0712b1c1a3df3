"""The TensorBoard plugin's options: validated on the user's thread, stored as plain values (picklable)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TensorBoardOptions:
    """What ``plugins={"tensorboard": {...}}`` may set.

    :param logdir: write each trial's run to ``<logdir>/<trial_name>`` instead of the trial's own directory
        in Tune's storage. A relative path is resolved against the current directory when the callback
        is built (so a restored run writes to the same place).
    :param prefix: a tag group put in front of every metric tag: ``prefix="tune"`` logs ``loss`` as
        ``tune/loss``. Empty (default): tags are the metric names exactly as reported.
    :param flush_secs: how often tensorboardX's own writer thread flushes to disk; TrackBridge also flushes
        every writer whenever its queue runs dry, so a running TensorBoard sees data within seconds.
    :param hparams: write the HParams record (config, status) of each trial when it ends.
    """

    logdir: str | None = None
    prefix: str = ""
    flush_secs: float = 2.0
    hparams: bool = True

    @classmethod
    def parse(cls, **options: Any) -> "TensorBoardOptions":
        """Validate keyword options; raise ``TypeError`` for unknown names or wrong types."""
        unknown = sorted(set(options) - {"logdir", "prefix", "flush_secs", "hparams"})
        if unknown:
            raise TypeError(
                f"unknown option(s) {', '.join(map(repr, unknown))}; "
                "valid options: logdir, prefix, flush_secs, hparams"
            )
        logdir = options.get("logdir")
        if logdir is not None:
            if not isinstance(logdir, (str, os.PathLike)):
                raise TypeError(f"logdir must be a path, got {type(logdir).__name__}")
            logdir = os.fspath(logdir)
            if "://" in logdir:
                raise ValueError(
                    f"logdir must be a local directory, got {logdir!r} "
                    "(TensorBoard event files are written on the driver; sync them yourself)"
                )
            logdir = os.path.abspath(os.path.expanduser(logdir))
        prefix = options.get("prefix", "")
        if prefix is None:
            prefix = ""
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
        prefix = prefix.strip("/")
        flush_secs = options.get("flush_secs", 2.0)
        if isinstance(flush_secs, bool) or not isinstance(flush_secs, (int, float)):
            raise TypeError(f"flush_secs must be a number, got {type(flush_secs).__name__}")
        if flush_secs <= 0:
            raise ValueError(f"flush_secs must be positive, got {flush_secs}")
        hparams = options.get("hparams", True)
        if not isinstance(hparams, bool):
            raise TypeError(f"hparams must be True or False, got {type(hparams).__name__}")
        return cls(logdir=logdir, prefix=prefix, flush_secs=float(flush_secs), hparams=hparams)

    def tag(self, key: str) -> str:
        """The TensorBoard tag of a metric key."""
        return f"{self.prefix}/{key}" if self.prefix else key
