"""What Comet's offline archives hold for one Tune experiment, read from the archives themselves (the zip
files ``comet upload`` sends: ``messages.json`` in each), for ``trackbridge demo``. Several archives with
one experiment key are one Comet experiment once uploaded; they are read in name order, the upload order."""

from __future__ import annotations

import glob
import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any

from trackbridge.stored_summary import STATUS_OF_WORD, StoredSummary, is_own_metric

#: Metrics Comet logs by itself (not the trial's): the run's duration, and system metrics when asked for.
_COMET_OWN_METRICS = ("process duration",)
_COMET_OWN_PREFIXES = ("sys.",)
#: Uploads that are the user's files (checkpoints as models, logged files), not Comet's own (source code, ...).
_USER_UPLOADS = ("asset", "model-element")


@dataclass
class _Experiment:
    others: dict[str, Any] = field(default_factory=dict)
    metric_points: int = 0
    params: set[str] = field(default_factory=set)
    uploads: int = 0


def _read(path: str, into: _Experiment) -> None:
    with zipfile.ZipFile(path) as archive:
        lines = archive.read("messages.json").decode("utf-8").splitlines()
    for line in filter(str.strip, lines):
        message = json.loads(line)
        kind, payload = message["type"], message["payload"]
        if kind == "metric_msg":
            name = payload["metric"]["metricName"]
            own = name not in _COMET_OWN_METRICS and not name.startswith(_COMET_OWN_PREFIXES)
            into.metric_points += own and is_own_metric(name)
        elif kind == "parameter_msg":
            for param in [payload["param"]] if "param" in payload else [payload["params"]]:
                if param.get("source") != "auto-logged":
                    into.params.add(param["paramName"])
        elif kind == "log_other":
            into.others[payload["key"]] = payload["value"]
        elif kind == "file_upload" and payload.get("upload_type") in _USER_UPLOADS:
            into.uploads += 1


def summarize(directory: str, tune_experiment: str) -> StoredSummary:
    """The experiments of ``tune_experiment`` (Comet other ``tune_experiment``) in the archives of ``directory``."""
    found: dict[str, _Experiment] = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(directory), "*.zip"))):
        with zipfile.ZipFile(path) as archive:
            key = json.loads(archive.read("experiment.json"))["offline_id"]
        _read(path, found.setdefault(key, _Experiment()))
    summary = StoredSummary()
    for experiment in found.values():
        if experiment.others.get("tune_experiment") != tune_experiment:
            continue
        summary.runs += 1
        summary.metric_points += experiment.metric_points
        summary.params += len(experiment.params)
        summary.artifacts = (summary.artifacts or 0) + experiment.uploads
        word = str(experiment.others.get("status") or "RUNNING")
        summary.statuses[STATUS_OF_WORD.get(word, word.lower())] += 1
    return summary
