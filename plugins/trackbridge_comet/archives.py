"""Where offline archives go, and what becomes of each one after ``experiment.end()`` wrote it.

Comet's ``OfflineExperiment`` keeps what a trial logs in a temporary directory and writes one zip archive,
``<experiment key>-<6 random letters>.zip``, at ``end()``. Left alone it would write into ``./.cometml-runs``
and, when the directory cannot be written, fall back to a fresh temporary directory with only a warning. So
the plugin:

- picks the directory itself (``resolve_directory``), creates it and checks it can write there
  (``check_writable``): an error names the directory, never a silent temporary one;
- renames each finished archive to ``<experiment key>-<NNN>.zip`` (``settle``): the NNN-th archive of that key
  in the directory. A trial reopened by ``Tuner.restore`` (in a new process, or started again after it ended
  with ``resume_errored=True``) writes another archive for the same key, and ``comet upload <dir>/*.zip``
  uploads in name order, so what was logged last (the final status) is uploaded last. (A trial Tune retries
  stays open: its experiment continues and writes one archive.) comet_ml names no archive path in its public
  API (``set_offline_zip_uploader`` is documented for the online fallback only), so ``settle`` finds it by
  its key;
- with remote Tune storage (S3, GCS, ...), writes archives to a local directory and copies each finished one
  to ``<experiment path>/comet/`` through the experiment's filesystem (one upload of a complete file).
"""

from __future__ import annotations

import glob
import logging
import os
import posixpath
import re
import shlex
import tempfile
import zipfile
from typing import Any

from trackbridge import ExperimentInfo

#: The directory, inside the experiment's directory, that archives go to by default.
SUBDIRECTORY = "comet"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name).strip("._") or "experiment"


def resolve_directory(option: str | None, experiment: ExperimentInfo | None) -> tuple[str, str | None]:
    """(local directory the archives are written to, remote directory on ``experiment.filesystem`` they are
    copied to, or None).

    ``offline_directory`` wins. Else ``<experiment path>/comet`` when Tune's storage is local. With remote storage,
    a local directory outside Tune's driver staging folder (Tune syncs that folder while archives are being
    written), ``<tmp>/trackbridge-comet/<experiment name>``, whose finished archives are copied to
    ``<experiment path>/comet``. Without an experiment directory (no Tune): ``./comet``.
    """
    if option:
        return option, None
    if experiment is not None and experiment.path and experiment.filesystem is None:
        return os.path.join(experiment.path, SUBDIRECTORY), None
    if experiment is not None and experiment.path:
        local = os.path.join(tempfile.gettempdir(), "trackbridge-comet", _safe(experiment.name))
        return local, posixpath.join(experiment.path, SUBDIRECTORY)
    if experiment is not None and experiment.local_path:
        return os.path.join(experiment.local_path, SUBDIRECTORY), None
    return os.path.abspath(SUBDIRECTORY), None


def check_writable(directory: str) -> None:
    """Create ``directory`` and write a probe file in it; raise ``OSError`` naming it when that fails."""
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".trackbridge-probe-"):
            pass
    except OSError as exc:
        raise OSError(
            f"trackbridge: comet: cannot write offline archives to {directory}: {exc.strerror or exc}; "
            "set the option offline_directory= to a writable directory"
        ) from exc


def prepare(option: str | None, experiment: ExperimentInfo | None, log: logging.Logger) -> tuple[str, str | None]:
    """``resolve_directory``, checked (``check_writable``), and said once in the log with the upload command."""
    local, remote = resolve_directory(option, experiment)
    check_writable(local)
    copied = f"; each is copied to {remote} when written" if remote else ""
    log.info("trackbridge: comet: offline archives go to %s%s; upload with: %s", local, copied, upload_command(local))
    return local, remote


def _numbered(names: list[str], key: str) -> set[str]:
    pattern = re.compile(rf"{re.escape(key)}-[0-9]{{3}}\.zip")
    return {os.path.basename(n) for n in names if pattern.fullmatch(os.path.basename(n))}


def remote_names(experiment: ExperimentInfo, remote_directory: str) -> list[str]:
    """The file names in ``remote_directory`` on the experiment's filesystem ([] when it does not exist)."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(remote_directory, allow_not_found=True)
    return [posixpath.basename(info.path) for info in experiment.filesystem.get_file_info(selector)]


def settle(experiment: Any, directory: str, key: str, elsewhere: list[str] | None = None) -> str:
    """After ``end()``: the archive the experiment wrote, renamed ``<key>-<NNN>.zip`` in ``directory``; its path.

    NNN counts the key's numbered archives in ``directory`` and in ``elsewhere`` (the names in the remote copy's
    directory), so a restore on another machine does not reuse a number. Raises ``RuntimeError`` when Comet
    wrote the archive elsewhere (it falls back to a temporary directory when the offline directory cannot be
    written at ``end()``) or wrote none.
    """
    written_in = os.path.abspath(str(getattr(experiment, "offline_directory", directory)))
    if written_in != os.path.abspath(directory):
        raise RuntimeError(
            f"trackbridge: comet: the archive of experiment {key} was written to {written_in}, not to {directory} "
            "(the offline directory could not be written when the trial ended); upload it from there"
        )
    local = glob.glob(os.path.join(glob.escape(directory), f"{key}-*.zip"))
    taken = _numbered(local, key)
    fresh = [p for p in local if os.path.basename(p) not in taken and not _placeholder(p)]
    if not fresh:
        raise RuntimeError(f"trackbridge: comet: experiment {key} ended without writing an archive in {directory}")
    taken |= _numbered(elsewhere or [], key)
    fresh.sort(key=os.path.getmtime)
    number = max((int(name[-7:-4]) for name in taken), default=0)
    target = ""
    for path in fresh:  # normally one; several only if an earlier rename was interrupted
        number += 1
        target = os.path.join(directory, f"{key}-{number:03d}.zip")
        os.replace(path, target)
    return target


def keep(
    experiment: Any, key: str, directory: str, tune_experiment: ExperimentInfo | None, remote_directory: str | None
) -> str:
    """After ``end()``: ``settle`` the archive (numbered after the local and the remote ones) and, with remote
    storage, copy it to ``remote_directory``; the local path."""
    remote = remote_directory if tune_experiment is not None else None
    path = settle(experiment, directory, key, remote_names(tune_experiment, remote) if remote else [])
    if remote is not None and tune_experiment is not None:
        copy_to_storage(path, tune_experiment, remote)
    return path


def _placeholder(path: str) -> bool:
    """An empty zip: comet_ml creates ``<key>-<letters>.zip`` empty when an offline experiment opens and fills it
    at ``end()``; one left by a killed driver holds nothing and would fail ``comet upload``. Removed."""
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.namelist():
                return False
    except (OSError, zipfile.BadZipFile):
        return False  # not ours to judge: numbered like any other
    os.remove(path)
    return True


def copy_to_storage(path: str, experiment: ExperimentInfo, remote_directory: str) -> str:
    """Copy the finished archive ``path`` to ``remote_directory`` on the experiment's filesystem; its remote path."""
    fs = experiment.filesystem
    target = posixpath.join(remote_directory, os.path.basename(path))
    fs.create_dir(remote_directory, recursive=True)
    with open(path, "rb") as source, fs.open_output_stream(target) as stream:
        while chunk := source.read(1 << 20):
            stream.write(chunk)
    return target


def upload_command(directory: str) -> str:
    """The command that uploads every archive of ``directory`` (in name order: each key's archives in turn)."""
    return f"comet upload {shlex.quote(directory)}/*.zip"
