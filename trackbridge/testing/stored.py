"""What a tracker stored (``StoredRuns``, filled by the plugin author's reader) and the kit's checks of it
against what a scenario sent."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trackbridge.testing.script import Played


@dataclass
class StoredRuns:
    """What a tracker holds, as the author's reader (``read_back(directory)``) reports it."""

    #: trial id -> steps at which metric ``loss`` was stored, in storage order (duplicates included).
    steps: dict[str, list[int]] = field(default_factory=dict)
    #: trial id -> "completed" / "failed" / "unfinished" (leave a trial out if the tracker has no status).
    statuses: dict[str, str] = field(default_factory=dict)
    #: trial id -> how many runs the tracker holds for it (default: 1 per trial in ``steps``).
    runs_per_trial: dict[str, int] = field(default_factory=dict)
    #: trial id -> steps at which the in-trial value ``batch_loss`` was stored (``trackbridge_trial_log``'s
    #: own step, not ``training_iteration``), in storage order. Leave it empty to skip that check.
    logged_steps: dict[str, list[int]] = field(default_factory=dict)


Reader = Callable[[Path], StoredRuns]

#: What a scenario expects of one trial: the steps of ``loss`` in the order sent, and the final status.
Expected = Mapping[str, tuple[list[int], str]]


def check_played(played: Played, problems: list[str]) -> None:
    """Every hook returned, nothing was dropped, the plugin finished in time."""
    problems.extend(played.errors)
    stats = played.stats
    if played.unfinished:
        problems.append(played.unfinished)
    elif stats.dropped:
        problems.append(f"{stats.dropped} events were never delivered: {stats.disabled_reason or 'dropped'}")
    if stats.failed and not played.errors:  # failures the watch did not see (e.g. in another process)
        problems.append(f"hooks failed: {stats.failed}, by hook: {stats.errors_by_hook}")


def check_stored(stored: StoredRuns, expected: Expected, problems: list[str], *, any_order: bool = False) -> None:
    """Each trial is one run holding ``loss`` at exactly the steps sent, with the status sent.

    ``any_order``: compare the steps as multisets (a PBT branch stores steps again; trackers keep them in
    places of their own, e.g. a separate context, so the storage order is the reader's)."""
    for tid, (steps, status) in expected.items():
        got = stored.steps.get(tid)
        if got is None:
            problems.append(f"trial {tid}: no run in the tracker holds metric 'loss' (expected steps {steps})")
        elif (sorted(got) if any_order else got) != (sorted(steps) if any_order else steps):
            problems.append(f"trial {tid}: loss stored at steps {got}, expected {steps}{_difference(got, steps)}")
        runs = stored.runs_per_trial.get(tid, 1 if got is not None else 0)
        if got is not None and runs != 1:
            problems.append(
                f"trial {tid}: {runs} runs in the tracker, expected 1 (a resumed trial must continue its run)"
            )
        if tid in stored.statuses and stored.statuses[tid] != status:
            problems.append(
                f"trial {tid}: status {stored.statuses[tid]!r}, expected {status!r}{_STATUS_HINTS.get(status, '')}"
            )


def check_logged(stored: StoredRuns, expected: Mapping[str, list[int]], problems: list[str]) -> None:
    if not stored.logged_steps:  # the reader does not report in-trial values
        return
    for tid, steps in expected.items():
        got = stored.logged_steps.get(tid)
        if got != steps:
            problems.append(f"trial {tid}: batch_loss stored at steps {got}, expected {steps}{_difference(got, steps)}")


_STATUS_HINTS = {
    "failed": " (trackbridge_trial_complete(status=FAILED) must end the run as failed)",
    "unfinished": " (UNFINISHED: the experiment ended first; the run must not look like a success)",
    "completed": " (trackbridge_trial_complete(status=COMPLETED) must end the run as finished)",
}


def _difference(got: list[int] | None, sent: list[int]) -> str:
    """``: missing [..], duplicated [..]`` for two lists of steps."""
    if got is None:
        return ""
    missing = list(sent)
    extra = []
    for step in got:
        if step in missing:
            missing.remove(step)
        else:
            extra.append(step)
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"not sent or stored twice {extra}")
    return f": {', '.join(parts)}" if parts else " (same steps, another order)"
