"""Read back what the W&B SDK stored for offline runs: check a run before ``wandb sync`` uploads it.

    python -m trackbridge_wandb_reader <dir>      # one line per run: id, name, rows, exit code

A public tool of its own, outside the W&B plugin (the plugin never imports it): TrackBridge's tests,
benchmarks and conformance checks read W&B's output through it, and so may anyone checking offline runs.

An offline run lives in ``<dir>/wandb/offline-run-<time>-<id>/`` and everything it logged is in
``run-<id>.wandb``: W&B's LevelDB-style log (a 7-byte ``:W&B`` header, then 32 KiB blocks of
checksummed chunks) of ``wandb_internal_pb2.Record`` protobufs - the very file ``wandb sync`` uploads.

The SDK used to ship a Python reader (``wandb.sdk.internal.datastore.DataStore``), but since the Go core
(``wandb-core``) took over, wandb 0.31 has none left, so this is a small, strict re-implementation of the
same format (https://github.com/google/leveldb/blob/main/doc/log_format.md with W&B's header): a checksum
mismatch or a broken chunk sequence raises, because a test must never pass on a half-read file.
"""

from __future__ import annotations

import glob
import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

HEADER_LEN = 7
BLOCK_LEN = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
IDENT = b":W&B"
MAGIC = 0xBEE1
VERSION = 0
# The checksum covers the chunk type byte followed by the data (IEEE CRC-32, as W&B writes it).
_TYPE_CRC = {t: zlib.crc32(bytes([t])) & 0xFFFFFFFF for t in (FULL, FIRST, MIDDLE, LAST)}


class CorruptLog(ValueError):
    """The file is not a complete, well-formed W&B transaction log."""


def iter_payloads(path: str) -> Iterator[bytes]:
    """Yield the raw bytes of every record in a ``.wandb`` file, reassembling chunked records."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < HEADER_LEN:
        raise CorruptLog(f"{path}: {len(data)} bytes, shorter than the file header")
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER_LEN])
    if (ident, magic, version) != (IDENT, MAGIC, VERSION):
        raise CorruptLog(f"{path}: not a W&B transaction log (header {data[:HEADER_LEN]!r})")
    pos = HEADER_LEN
    pending: bytearray | None = None
    while pos < len(data):
        space_left = BLOCK_LEN - pos % BLOCK_LEN
        if space_left < HEADER_LEN:  # the block's trailer: zero padding
            if data[pos : pos + space_left].strip(b"\x00"):
                raise CorruptLog(f"{path}: non-zero block trailer at {pos}")
            pos += space_left
            continue
        if pos + HEADER_LEN > len(data):
            raise CorruptLog(f"{path}: truncated chunk header at {pos}")
        checksum, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER_LEN])
        if checksum == 0 and length == 0 and kind == 0:
            # zero-filled rest of a block (a writer that pads the block it was in when it closed)
            pos += space_left
            continue
        chunk = data[pos + HEADER_LEN : pos + HEADER_LEN + length]
        if len(chunk) != length:
            raise CorruptLog(f"{path}: truncated chunk at {pos}")
        if kind not in _TYPE_CRC or zlib.crc32(chunk, _TYPE_CRC[kind]) & 0xFFFFFFFF != checksum:
            raise CorruptLog(f"{path}: bad checksum or chunk type {kind} at {pos}")
        pos += HEADER_LEN + length
        if kind == FULL:
            if pending is not None:
                raise CorruptLog(f"{path}: FULL chunk inside a chunked record at {pos}")
            yield bytes(chunk)
        elif kind == FIRST:
            if pending is not None:
                raise CorruptLog(f"{path}: FIRST chunk inside a chunked record at {pos}")
            pending = bytearray(chunk)
        else:
            if pending is None:
                raise CorruptLog(f"{path}: chunk type {kind} without a FIRST at {pos}")
            pending += chunk
            if kind == LAST:
                yield bytes(pending)
                pending = None
    if pending is not None:
        raise CorruptLog(f"{path}: file ends inside a chunked record")


def iter_records(path: str) -> Iterator[pb.Record]:
    """Every ``wandb_internal_pb2.Record`` in a ``.wandb`` file, in the order written."""
    for payload in iter_payloads(path):
        record = pb.Record()
        record.ParseFromString(payload)
        yield record


def _json(value_json: str) -> Any:
    return json.loads(value_json)


def _items(items: Any) -> dict[str, Any]:
    """``HistoryItem``/``ConfigItem``/``SummaryItem`` lists as a dict (nested_key joined with ``/``)."""
    out: dict[str, Any] = {}
    for item in items:
        key = item.key or "/".join(item.nested_key)
        out[key] = _json(item.value_json)
    return out


@dataclass
class OfflineRun:
    """What one ``run-<id>.wandb`` file says about a run (one file = one ``wandb.init`` ... ``finish``)."""

    path: str
    run_id: str = ""
    name: str = ""
    group: str = ""
    project: str = ""
    entity: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    resumed: bool = False
    #: The config as the run ended (config records are updates; later ones win), "_wandb" removed.
    config: dict[str, Any] = field(default_factory=dict)
    #: One dict per history row, in order; ``_step`` is W&B's own row counter.
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The summary updates merged in order (the last value of each key).
    summary: dict[str, Any] = field(default_factory=dict)
    #: ``define_metric`` calls: (name or glob, step_metric).
    metrics: list[tuple[str, str]] = field(default_factory=list)
    #: ``log_artifact`` records, in order (name, type, aliases, metadata JSON, manifest).
    artifacts: list[pb.ArtifactRecord] = field(default_factory=list)
    #: The exit code given to ``run.finish`` (None: the run never finished).
    exit_code: int | None = None
    #: The program W&B recorded as the run's source (``__main__``'s file, or ``-m <module>``), and its arguments.
    program: str = ""
    args: list[str] = field(default_factory=list)
    record_types: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> str:
        return os.path.dirname(self.path)


def read_run(path: str, wait: bool = True) -> OfflineRun:
    """Parse one ``run-<id>.wandb`` file (first waiting until W&B finished writing it, unless ``wait=False``)."""
    if wait:
        wait_until_complete(path)
    run = OfflineRun(path=path)
    for record in iter_records(path):
        kind = record.WhichOneof("record_type")
        run.record_types.append(kind or "")
        if kind == "run":
            r = record.run
            run.run_id, run.name, run.group = r.run_id, r.display_name, r.run_group
            run.project, run.entity, run.job_type = r.project, r.entity, r.job_type
            run.tags, run.notes, run.resumed = list(r.tags), r.notes, bool(r.resumed)
            run.config.update(_items(r.config.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
            for item in record.config.remove:
                run.config.pop(item.key or "/".join(item.nested_key), None)
        elif kind == "history":
            row = _items(record.history.item)
            if record.history.HasField("step"):
                row.setdefault("_step", record.history.step.num)
            run.history.append(row)
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
        elif kind == "metric":
            m = record.metric
            run.metrics.append((m.name or m.glob_name, m.step_metric))
        elif kind == "artifact":
            run.artifacts.append(record.artifact)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
        elif kind == "environment" and record.environment.program:
            run.program, run.args = record.environment.program, list(record.environment.args)
    run.config.pop("_wandb", None)
    return run


def wait_until_complete(path: str, timeout: float = 30.0) -> None:
    """Wait until W&B has written a finished run's file completely.

    ``run.finish()`` returns once W&B's service has the exit record, but the service writes and closes
    ``run-<id>.wandb`` asynchronously (measured: up to tens of milliseconds later), so a reader right after
    ``finish()`` (or ``Tuner.fit()``) may see an empty or half-written file. Complete means: the file parses,
    holds an exit record, and did not grow for 50 ms.
    """
    deadline = time.monotonic() + timeout
    while True:
        size = os.path.getsize(path)
        try:
            done = any(r.WhichOneof("record_type") == "exit" for r in iter_records(path))
        except CorruptLog:
            done = False
        if done:
            time.sleep(0.05)
            if os.path.getsize(path) == size:
                return
        elif time.monotonic() > deadline:
            raise TimeoutError(f"{path}: no complete W&B run after {timeout}s")
        else:
            time.sleep(0.05)


def run_files(root: str) -> list[str]:
    """Every ``run-*.wandb`` file under ``root`` (a ``dir=`` given to the plugin, or its ``wandb/``)."""
    pattern = os.path.join(root, "**", "run-*.wandb")
    # wandb keeps a ``latest-run`` symlink to the newest run directory: count each file once
    unique = {os.path.realpath(p) for p in glob.glob(pattern, recursive=True)}
    return sorted(unique, key=lambda p: (os.path.basename(os.path.dirname(p)), p))


def read_runs(root: str) -> list[OfflineRun]:
    """Every offline run stored under ``root``, oldest run directory first."""
    return [read_run(p) for p in run_files(root)]


def runs_by_id(root: str) -> dict[str, list[OfflineRun]]:
    """Offline runs under ``root`` grouped by run id (a resumed run adds a second file with the same id)."""
    out: dict[str, list[OfflineRun]] = {}
    for run in read_runs(root):
        out.setdefault(run.run_id, []).append(run)
    return out


def artifact_manifest(artifact: pb.ArtifactRecord) -> dict[str, Any]:
    """The entries (path -> digest/size) of an artifact record's manifest."""
    return {
        entry.path: {"digest": entry.digest, "size": entry.size, "local_path": entry.local_path}
        for entry in artifact.manifest.contents
    }
