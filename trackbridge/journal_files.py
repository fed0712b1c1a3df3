"""Where a plugin's delivery journal lives (one file per plugin and destination) and how it writes step ranges.

See ``journal`` for what the journal records and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from trackbridge import experiment_files
from trackbridge.events import ExperimentInfo
from trackbridge.secrets import mask_uri

logger = logging.getLogger("trackbridge")

JOURNAL_DIR = "trackbridge_journal"
#: A range of missing steps wider than this in a journal file is taken as damage and ignored.
MAX_RANGE = 1_000_000


def journal_name(plugin_name: str, destination: str | None = None) -> str:
    """The journal file of a plugin writing to ``destination`` (its ``tracker_destination()``), relative to
    the experiment directory: one file per plugin and destination, so what one store holds never stands for
    another's (a replay into a second MLflow store, two W&B projects)."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", plugin_name)
    if destination:
        base += "-" + hashlib.sha256(destination.encode("utf-8")).hexdigest()[:12]
    return f"{JOURNAL_DIR}/{base}.json"


def destination_of(plugin: Any) -> str | None:
    """``plugin.tracker_destination()`` (masked), None when the plugin has none or it fails."""
    method = getattr(plugin, "tracker_destination", None)
    if not callable(method):
        return None
    try:
        destination = method()
    except Exception as exc:  # the journal is best effort: fall back to one file per plugin
        logger.warning("trackbridge: plugin tracker_destination() failed: %s: %s", type(exc).__name__, exc)
        return None
    return mask_uri(str(destination)) if destination else None


def warn_about_other_destinations(experiment: ExperimentInfo, plugin_name: str, destination: str) -> None:
    """A restore found no journal for this destination: name the journals of other destinations, if any (the
    same tracker reached another way, e.g. from another directory, gets its results again)."""
    directory = experiment_files.location(experiment, JOURNAL_DIR)
    if directory is None:
        return
    base = journal_name(plugin_name).removeprefix(JOURNAL_DIR + "/").removesuffix(".json")
    try:
        names = experiment_files.list_names(experiment, JOURNAL_DIR)
    except OSError:
        return
    others = [
        n for n in names if n.startswith(base + "-") and n != posixpath.basename(journal_name(plugin_name, destination))
    ]
    if others:
        logger.warning(
            "trackbridge: plugin %r: no delivery journal for its destination %s, but journals of other "
            "destinations exist (%s): if this is the same tracker reached another way (another working "
            "directory, URL or environment), steps it holds may be delivered again",
            plugin_name,
            destination,
            ", ".join(sorted(others)),
        )


def ranges_of(steps: set[int]) -> list[list[int]]:
    """``{1, 2, 3, 7}`` as ``[[1, 3], [7, 7]]`` (how the file keeps missing steps)."""
    ranges: list[list[int]] = []
    for step in sorted(steps):
        if ranges and step == ranges[-1][1] + 1:
            ranges[-1][1] = step
        else:
            ranges.append([step, step])
    return ranges


def steps_of(ranges: Any) -> set[int]:
    """The steps of ``ranges_of``'s output; what is not a ``[first, last]`` pair of ints is ignored."""
    steps: set[int] = set()
    for pair in ranges if isinstance(ranges, list) else ():
        if isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) for v in pair):
            if 0 <= pair[1] - pair[0] <= MAX_RANGE:
                steps.update(range(pair[0], pair[1] + 1))
    return steps


@dataclass
class JournalRecord:
    """What a journal file says, per trial."""

    steps: dict[str, int] = field(default_factory=dict)
    missing: dict[str, set[int]] = field(default_factory=dict)
    earlier: dict[str, list[int | None]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)


def read_journal(
    experiment: ExperimentInfo, plugin_name: str, destination: str | None, *, legacy: bool
) -> JournalRecord | None:
    """The journal of ``plugin_name`` for ``destination`` (None: no file, or an empty one). ``legacy``: fall back to
    the file of TrackBridge 0.2, named after the plugin only (a live restore of an experiment it wrote).
    Raises ``OSError`` or ``ValueError`` for a file that cannot be read."""
    text = experiment_files.read_text(experiment, journal_name(plugin_name, destination))
    if not text and destination and legacy:
        text = experiment_files.read_text(experiment, journal_name(plugin_name))
        if not text:
            warn_about_other_destinations(experiment, plugin_name, destination)
    saved = json.loads(text) if text else {}
    if not saved:
        return None
    record = JournalRecord()
    for trial_id, entry in (saved.get("trials") or {}).items():
        if not isinstance(entry, dict):
            continue
        tid, step = str(trial_id), entry.get("step")
        if isinstance(step, int):
            record.steps[tid] = step
        missing = steps_of(entry.get("missing"))
        if missing:
            record.missing[tid] = missing
        earlier = entry.get("earlier_branches")
        if isinstance(earlier, list) and all(v is None or isinstance(v, int) for v in earlier):
            record.earlier[tid] = list(earlier)
        if isinstance(entry.get("status"), str):
            record.status[tid] = entry["status"]
    return record


def journal_entry(
    step: int | None, missing: set[int] | None, status: str | None, earlier: list[int | None] | None
) -> dict[str, Any]:
    """One trial's entry in the file."""
    entry: dict[str, Any] = {"step": step}
    if missing:
        entry["missing"] = ranges_of(missing)
    if status is not None:
        entry["status"] = status
    if earlier:
        entry["earlier_branches"] = earlier
    return entry
