"""What one tracker holds after one run, counted against what the workload reported.

``TrackerCheck`` is the verdict for one tracker (and kind: the results, or the in-trial values); ``Tally``
and ``InTrialTally`` collect the (run, metric, step, value) points a reader found and turn them into it: a
point counts when its step is one the workload reported and its value is the workload's value at that step
(``benchmarks.workload.metric_value``, ``in_trial_value``); in-trial points stored twice are duplicates. The
readers themselves are in ``benchmarks.verify``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmarks.workload import in_trial_names, in_trial_value, metric_names, metric_value


@dataclass
class TrackerCheck:
    """What one tracker holds after one configuration ran."""

    tracker: str
    expected: int
    #: "results" (``tune.report``) or "in-trial" (``trackbridge.log``).
    kind: str = "results"
    #: Values read back that belong to a metric of the workload (duplicates included).
    stored: int = 0
    #: Distinct (run, metric, step) with the right value.
    valid: int = 0
    runs: int = 0
    expected_runs: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: (run, metric, step) points stored more than once (each extra copy counted).
    duplicates: int = 0
    #: What a reader had to do, or saw, that is worth showing but is no loss (Aim: runs the index did not show).
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.valid == self.expected and self.runs == self.expected_runs and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "tracker": self.tracker,
            "kind": self.kind,
            "expected": self.expected,
            "stored": self.stored,
            "valid": self.valid,
            "runs": self.runs,
            "expected_runs": self.expected_runs,
            "complete": self.complete,
            "missing": self.expected - self.valid,
            "duplicates": self.duplicates,
            "problems": self.problems[:5],
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
        }


class Tally:
    """Collects (run, metric, value-at-step) and turns them into a TrackerCheck."""

    def __init__(self, tracker: str, trials: int, results: int, num_metrics: int) -> None:
        self.names = metric_names(num_metrics)
        self.index = {name: k for k, name in enumerate(self.names)}
        self.results = results
        self.check = TrackerCheck(tracker, expected=trials * results * num_metrics, expected_runs=trials)
        self.seen: dict[str, set[tuple[str, int]]] = defaultdict(set)
        self.bad_values = 0

    def metric_of(self, key: str) -> str | None:
        if key in self.index:
            return key
        tail = key.rsplit("/", 1)[-1]
        return tail if tail in self.index else None

    def add(self, run: str, key: str, step: int | None, value: float) -> None:
        name = self.metric_of(key)
        if name is None:
            return
        self.check.stored += 1
        k = self.index[name]
        if step is None:  # W&B rows: the value itself says which step it belongs to
            guess = value - k / 16.0
            step = int(round(guess)) if abs(guess - round(guess)) < 1e-6 else None
        if step is None or not 1 <= step <= self.results or float(value) != metric_value(step, k):
            self.bad_values += 1
            return
        self.seen[run].add((name, step))

    def done(self, started: float) -> TrackerCheck:
        c = self.check
        c.runs = sum(1 for pairs in self.seen.values() if pairs)
        c.valid = sum(len(pairs) for pairs in self.seen.values())
        if self.bad_values:
            c.problems.append(f"{self.bad_values} values with a wrong step or value")
        c.seconds = time.perf_counter() - started
        return c


class InTrialTally:
    """The same for in-trial values: (run, in-trial metric, in-trial step), each exactly once."""

    def __init__(self, tracker: str, trials: int, results: int, logs: int) -> None:
        self.names = in_trial_names()
        self.index = {name: k for k, name in enumerate(self.names)}
        self.steps = results * logs
        self.check = TrackerCheck(
            tracker, expected=trials * self.steps * len(self.names), kind="in-trial", expected_runs=trials
        )
        self.seen: dict[str, dict[tuple[str, int], int]] = defaultdict(lambda: defaultdict(int))
        self.bad_values = 0

    def metric_of(self, key: str) -> str | None:
        return key if key in self.index else None

    def add(self, run: str, key: str, step: int | None, value: float) -> None:
        if key not in self.index:
            return
        self.check.stored += 1
        if step is None or not 1 <= step <= self.steps or float(value) != in_trial_value(step, self.index[key]):
            self.bad_values += 1
            return
        self.seen[run][(key, step)] += 1

    def done(self, started: float) -> TrackerCheck:
        c = self.check
        c.runs = sum(1 for points in self.seen.values() if points)
        c.valid = sum(len(points) for points in self.seen.values())
        c.duplicates = sum(n - 1 for points in self.seen.values() for n in points.values())
        if self.bad_values:
            c.problems.append(f"{self.bad_values} in-trial values with a wrong step or value")
        if c.duplicates:
            c.problems.append(f"{c.duplicates} in-trial points stored twice")
        c.seconds = time.perf_counter() - started
        return c


def tallies(tracker: str, trials: int, results: int, num_metrics: int, logs: int) -> list[Any]:
    tallies: list[Any] = [Tally(tracker, trials, results, num_metrics)]
    if logs:
        tallies.append(InTrialTally(tracker, trials, results, logs))
    return tallies
