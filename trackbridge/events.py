"""The plain, immutable values handed to hook implementations.

No Ray object ever crosses the hook boundary: plugins can be driven without Ray (the conformance kit in
``trackbridge.testing`` does exactly that), and a value a plugin receives never changes under it while
its worker thread is busy with it.
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from trackbridge.errors import CheckpointGone


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


def _rebuild(cls: type, values: dict[str, Any]) -> Any:
    return cls(**values)


class _Picklable:
    """Read-only mappings do not pickle; events must (a plugin may run in its own process)."""

    def __reduce__(self) -> tuple[Any, ...]:
        values = {
            f: (dict(v) if isinstance(v, MappingProxyType) else v)
            for f, v in ((f, getattr(self, f)) for f in self.__dataclass_fields__)  # type: ignore[attr-defined]
        }
        return (_rebuild, (type(self), values))


class TrialStatus(str, enum.Enum):
    """How a trial ended, as told to ``trackbridge_trial_complete``."""

    #: The trainable returned or a stopper stopped it: the run succeeded.
    COMPLETED = "completed"
    #: The trainable raised and Tune gave up on it (no retries left).
    FAILED = "failed"
    #: The experiment ended (finished, interrupted, Ctrl+C) while the trial was paused, pending or running;
    #: Tune sends no completion for such trials, TrackBridge does, so every tracker run ends.
    UNFINISHED = "unfinished"


@dataclass(frozen=True)
class ExperimentInfo:
    """One Tune experiment (one ``Tuner.fit()``)."""

    #: The experiment's directory name (``RunConfig(name=...)`` or Tune's generated one).
    name: str
    #: Where Tune stores the experiment (may be a URI such as ``s3://...`` or a local path).
    path: str | None = None
    #: The driver's local staging directory of the experiment (always a local path, or None).
    local_path: str | None = None
    #: True when this experiment continues a restored one (``Tuner.restore``).
    resumed: bool = False
    #: A ``pyarrow.fs.FileSystem`` holding ``path`` when the storage is not local (S3, GCS, ...); None when
    #: ``path`` is a directory on this machine.
    filesystem: Any = None
    #: True when the events come from ``trackbridge replay`` (Tune's records of a finished or interrupted
    #: run), not from a live Tune run: no Tune loggers run beside the plugins.
    replayed: bool = False


@dataclass(frozen=True)
class TrialInfo(_Picklable):
    """One Tune trial; the same trial always has the same ``trial_id``."""

    trial_id: str
    #: Tune's display name, e.g. ``train_fn_6f2a1_00001``.
    trial_name: str
    experiment_name: str
    #: The trial's config flattened with ``/`` (``{"opt/lr": 0.1}``), secrets redacted, values reduced to
    #: plain scalars, strings, or lists of them (anything else as its ``repr``).
    config: Mapping[str, Any] = field(default_factory=dict)
    #: The same config, redacted and reduced the same way, but nested as the user wrote it.
    nested_config: Mapping[str, Any] = field(default_factory=dict)
    #: Tune's directory of the trial (local path on the driver), or None when driven without Ray.
    local_path: str | None = None
    #: Tune's storage path of the trial (may be remote).
    path: str | None = None
    #: Tune's experiment tag for the trial (e.g. ``1_lr=0.1``).
    experiment_tag: str = ""
    #: A ``pyarrow.fs.FileSystem`` holding ``path`` when Tune's storage is not local; None when ``path`` is a
    #: directory on this machine.
    filesystem: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", _frozen(self.config))
        object.__setattr__(self, "nested_config", _frozen(self.nested_config))


@dataclass(frozen=True)
class LoggedFile:
    """A file the trial logged with ``trackbridge.log_artifact``, copied to the driver."""

    #: Where the copy is, on the driver's file system.
    path: str
    #: The name to store it under (``log_artifact(path, name=...)``, else the file's own name).
    name: str


@dataclass(frozen=True)
class CheckpointInfo(_Picklable):
    """A checkpoint Tune has persisted for a trial."""

    #: Path of the checkpoint directory on ``filesystem``.
    path: str
    #: The step (``training_iteration``) of the result the checkpoint belongs to, if known.
    step: int | None = None
    #: The metrics of that result (flattened, auto-filled fields removed).
    metrics: Mapping[str, Any] = field(default_factory=dict)
    #: A ``pyarrow.fs.FileSystem`` holding ``path``; None means the local file system.
    filesystem: Any = None
    #: TrackBridge's pin of a local checkpoint: its files hard-linked (or copied) when the event was emitted,
    #: kept until every plugin taking checkpoints has passed the event (``checkpoint_pins``). None: not pinned.
    #: Read the files through ``local_copy()``, which uses the pin.
    pinned_path: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", _frozen(self.metrics))

    @property
    def is_local(self) -> bool:
        """True when ``path`` is a directory on this machine."""
        return self.filesystem is None or getattr(self.filesystem, "type_name", "local") == "local"

    def local_directory(self, scratch_dir: str) -> str:
        """Return a local directory with the checkpoint's files, downloading into ``scratch_dir`` if needed.

        Prefer ``local_copy()``, which also cleans up and reports a checkpoint that is gone.
        """
        if self.is_local:
            return self._local_files() or self.path
        import pyarrow.fs as pafs

        target = os.path.join(scratch_dir, os.path.basename(self.path.rstrip("/")) or "checkpoint")
        os.makedirs(target, exist_ok=True)
        pafs.copy_files(
            self.path, target, source_filesystem=self.filesystem, destination_filesystem=pafs.LocalFileSystem()
        )
        return target

    @contextlib.contextmanager
    def local_copy(self) -> Iterator[str]:
        """``with checkpoint.local_copy() as directory:`` the checkpoint's files in a local directory.

        A local checkpoint is read from TrackBridge's pin (``pinned_path``: taken when Tune reported it, so
        Tune's ``CheckpointConfig(num_to_keep=...)`` deleting it meanwhile does not matter), else in place;
        read only (a pin's files are hard links of Tune's), and copy what you need before the block ends. A
        remote one is downloaded into a temporary directory that is removed after the block. Raises
        ``CheckpointGone`` when the checkpoint no longer exists (a remote one Tune deleted before the plugin
        reached it, or a local one that could not be pinned).
        """
        if self.is_local:
            directory = self._local_files()
            if directory is None:
                raise self._gone()
            yield directory
            return
        import pyarrow.fs as pafs

        if self.filesystem.get_file_info(self.path).type == pafs.FileType.NotFound:
            raise self._gone()
        scratch = tempfile.mkdtemp(prefix="trackbridge-checkpoint-")
        try:
            yield self.local_directory(scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _local_files(self) -> str | None:
        for directory in (self.pinned_path, self.path):
            if directory and os.path.isdir(directory):
                return directory
        return None

    def _gone(self) -> CheckpointGone:
        return CheckpointGone(
            f"checkpoint {self.path} (step {self.step}) is gone; was it deleted by "
            "CheckpointConfig(num_to_keep=...) before it could be logged?"
        )
