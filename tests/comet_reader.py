"""A small reader of Comet's offline archives, for tests: what ``comet upload`` would send, read with zipfile/json.

An archive (comet_ml 3.58) is a zip holding ``experiment.json`` (the key as ``offline_id``, project, workspace,
tags, resume strategy), ``messages.json`` (one JSON message per line: ``{"type": ..., "payload": ...}``) and
one file per uploaded asset (named by the ``file_path`` of its ``file_upload`` message). Several archives with
one key are one Comet experiment once uploaded (``experiments`` merges them in archive-name order, the order
``comet upload <dir>/*.zip`` uploads them).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Asset:
    name: str  # fileName
    upload_type: str  # "asset", "model-element", "source_code", "git-patch", ...
    group: str | None  # groupingName: the model name of a model element
    step: int | None
    metadata: dict[str, Any]
    data: bytes
    file: str  # the member of the archive holding it


@dataclass
class Archive:
    path: str
    key: str
    project_name: str | None
    workspace: str | None
    tags: list[str]
    resume_strategy: str
    #: (name, value, step) of every metric message, in message order (values as stored: NaN is "NaN").
    metrics: list[tuple[str, Any, int | None]] = field(default_factory=list)
    #: Parameters logged by the caller (not Comet's auto-logged ``curr_step``): name -> [(value, step)].
    params: dict[str, list[tuple[Any, int | None]]] = field(default_factory=dict)
    #: "Others" (log_other), every value in message order.
    others: dict[str, list[Any]] = field(default_factory=dict)
    assets: list[Asset] = field(default_factory=list)
    #: Message types in the archive, with "file_upload" split by upload type ("file_upload:asset").
    message_types: set[str] = field(default_factory=set)
    files: list[str] = field(default_factory=list)


def read_archive(path: str | Path) -> Archive:
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read("experiment.json"))
        archive = Archive(
            str(path),
            meta["offline_id"],
            meta.get("project_name"),
            meta.get("workspace"),
            list(meta.get("tags") or []),
            meta.get("resume_strategy", ""),
            files=z.namelist(),
        )
        for line in z.read("messages.json").decode("utf-8").splitlines():
            if not line.strip():
                continue
            message = json.loads(line)
            kind, payload = message["type"], message["payload"]
            if kind == "metric_msg":
                m = payload["metric"]
                archive.metrics.append((m["metricName"], m["metricValue"], m.get("step")))
            elif kind == "parameter_msg":
                items = [payload["param"]] if "param" in payload else [payload["params"]]
                for p in items:
                    if p.get("source") != "auto-logged":
                        archive.params.setdefault(p["paramName"], []).append((p["paramValue"], p.get("step")))
            elif kind == "log_other":
                archive.others.setdefault(payload["key"], []).append(payload["value"])
            elif kind == "file_upload":
                kind = f"file_upload:{payload['upload_type']}"
                extra = payload.get("additional_params") or {}
                archive.assets.append(
                    Asset(
                        extra.get("fileName", ""),
                        payload["upload_type"],
                        extra.get("groupingName"),
                        extra.get("step"),
                        payload.get("metadata") or {},
                        z.read(payload["file_path"]),
                        payload["file_path"],
                    )
                )
            archive.message_types.add(kind)
    return archive


def read_archives(directory: str | Path) -> list[Archive]:
    """Every archive of ``directory``, in name order."""
    names = sorted(n for n in os.listdir(directory) if n.endswith(".zip"))
    return [read_archive(os.path.join(directory, n)) for n in names]


@dataclass
class Experiment:
    """One Comet experiment: the archives of one key, merged in upload order."""

    key: str
    parts: list[Archive]

    @property
    def name(self) -> str | None:
        return self.other("Name")

    def other(self, key: str) -> Any:
        """The value Comet ends up with: the last one logged."""
        found = [v for part in self.parts for v in part.others.get(key, [])]
        return found[-1] if found else None

    def param(self, key: str) -> Any:
        found = [v for part in self.parts for v, _step in part.params.get(key, [])]
        return found[-1] if found else None

    @property
    def params(self) -> dict[str, Any]:
        names = {n for part in self.parts for n in part.params}
        return {n: self.param(n) for n in names}

    @property
    def tags(self) -> set[str]:
        return {t for part in self.parts for t in part.tags}

    def series(self, metric: str) -> list[tuple[int | None, Any]]:
        """(step, value) of every point of ``metric``, across the parts, in the order they were logged."""
        return [(step, value) for part in self.parts for name, value, step in part.metrics if name == metric]

    def steps(self, metric: str) -> list[int | None]:
        return [step for step, _value in self.series(metric)]

    @property
    def assets(self) -> list[Asset]:
        return [a for part in self.parts for a in part.assets]

    @property
    def message_types(self) -> set[str]:
        return {t for part in self.parts for t in part.message_types}


def experiments(directory: str | Path) -> dict[str, Experiment]:
    """The experiments the archives of ``directory`` make once uploaded: key -> Experiment."""
    out: dict[str, Experiment] = {}
    for archive in read_archives(directory):
        out.setdefault(archive.key, Experiment(archive.key, [])).parts.append(archive)
    return out


def by_trial(directory: str | Path) -> dict[str, Experiment]:
    """The experiments of ``directory`` by the ``trial_id`` other TrackBridge logs."""
    return {e.other("trial_id"): e for e in experiments(directory).values()}
