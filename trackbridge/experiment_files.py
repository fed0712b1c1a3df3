"""Small files TrackBridge keeps with an experiment (the delivery report, the delivery journal), read and
written where Tune keeps the experiment: a local directory, or any ``pyarrow.fs`` filesystem (S3, GCS, ...)
when ``ExperimentInfo.filesystem`` is set.

A write replaces the whole file in one step (a rename on a local disk, one object upload on an object store),
so a reader never sees half a file, even after a crash mid-write.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from typing import Any

from trackbridge.events import ExperimentInfo


def location(experiment: ExperimentInfo | None, name: str) -> str | None:
    """Where ``name`` (a path relative to the experiment directory) lives, or None when the experiment has no
    directory. Local experiments: a local path; remote ones: a path on ``experiment.filesystem``."""
    if experiment is None:
        return None
    if experiment.filesystem is not None and experiment.path:
        return posixpath.join(experiment.path, name)
    directory = experiment.path or experiment.local_path
    return os.path.join(directory, name) if directory else None


def write_text(experiment: ExperimentInfo | None, name: str, text: str) -> str | None:
    """Write ``text`` to ``name`` in the experiment directory (replacing it); returns where, None without a
    directory. Raises ``OSError`` (pyarrow's errors included) when the storage refuses."""
    path = location(experiment, name)
    if path is None or experiment is None:
        return None
    fs = experiment.filesystem
    if fs is not None:
        fs.create_dir(posixpath.dirname(path), recursive=True)
        with fs.open_output_stream(path) as stream:  # one object upload: replaced at once
            stream.write(text.encode("utf-8"))
        return path
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def uri(experiment: ExperimentInfo | None, path: str) -> str:
    """``path`` (from ``location``) as users name it: a local path, or ``<scheme>://<path>`` on remote storage."""
    fs = experiment.filesystem if experiment is not None else None
    return path if fs is None else f"{getattr(fs, 'type_name', 'remote')}://{path}"


def read_text(experiment: ExperimentInfo | None, name: str) -> str | None:
    """The text of ``name`` in the experiment directory; None when it (or the directory) does not exist."""
    path = location(experiment, name)
    if path is None or experiment is None:
        return None
    fs: Any = experiment.filesystem
    try:
        if fs is not None:
            with fs.open_input_stream(path) as stream:
                return bytes(stream.read()).decode("utf-8")
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def list_names(experiment: ExperimentInfo | None, name: str) -> list[str]:
    """The names of the files in the directory ``name`` of the experiment directory ([] when it is absent)."""
    path = location(experiment, name)
    if path is None or experiment is None:
        return []
    fs: Any = experiment.filesystem
    if fs is not None:
        import pyarrow.fs

        infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
        return [posixpath.basename(i.path) for i in infos]
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
