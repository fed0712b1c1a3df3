"""The metric points a reopened run already holds, so that they are not stored a second time.

A run a previous process created (``Tuner.restore``, ``trackbridge replay --only-missing``) may be sent points
it already holds: results a crashed driver had written to MLflow but not yet recorded in its delivery journal,
or a replay re-sending a trial's whole history. When the plugin reopens such a run, ``HeldSteps.read`` reads,
per metric the run has (``run.data.metrics``), the steps of its history with ``MlflowClient.get_metric_history``
(MLflow 3 has no public call reading all of a run's histories at once). From then on the plugin drops every
point of a result or an in-trial log whose (metric name as MLflow stores it, step) the run held at that moment;
points it writes itself are not added. A PBT exploit (``trackbridge_trial_config_update``) ends this for the
trial: it continues from another trial's checkpoint, so its steps go back and are new points again.

Memory: per metric, the held steps as sorted disjoint ranges of consecutive steps (two 8-byte integers per
range), so a history of consecutive steps costs 16 bytes however long it is; a sparse one 16 bytes a step.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


class StepRanges:
    """A set of integer steps, kept as sorted, disjoint, inclusive ranges ``[starts[i], ends[i]]``."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, steps: Iterable[int]) -> None:
        self._starts = array("q")
        self._ends = array("q")
        for step in sorted(set(steps)):
            if self._ends and step == self._ends[-1] + 1:
                self._ends[-1] = step
            else:
                self._starts.append(step)
                self._ends.append(step)

    def __contains__(self, step: object) -> bool:
        if not isinstance(step, int):
            return False
        i = bisect_right(self._starts, step) - 1
        return i >= 0 and step <= self._ends[i]

    def __len__(self) -> int:
        """How many steps (not ranges)."""
        return sum(end - start + 1 for start, end in zip(self._starts, self._ends, strict=True))

    def ranges(self) -> Iterable[tuple[int, int]]:
        """The ranges, in order, as ``(first, last)`` steps."""
        return zip(self._starts, self._ends, strict=True)


def _count_union(ranges: Iterable[tuple[int, int]]) -> int:
    """How many distinct steps lie in the union of ``ranges``."""
    total = 0
    last = None
    for start, end in sorted(ranges):
        if last is not None and start <= last:
            if end > last:
                total += end - last
                last = end
        else:
            total += end - start + 1
            last = end
    return total


class HeldSteps:
    """The (metric name, step) pairs one reopened run held when the plugin reopened it."""

    __slots__ = ("_steps",)

    def __init__(self, steps: Mapping[str, StepRanges]) -> None:
        self._steps = dict(steps)

    @classmethod
    def read(cls, client: Any, run: Any) -> HeldSteps:
        """What ``run`` (an MLflow ``Run``, e.g. from ``search_runs``) holds: one ``get_metric_history`` call
        per metric key of the run (each paged by MLflow itself against a server)."""
        run_id = run.info.run_id
        steps: dict[str, StepRanges] = {}
        for key in sorted(run.data.metrics or {}):
            held = StepRanges(int(point.step) for point in client.get_metric_history(run_id, key))
            if len(held):
                steps[key] = held
        return cls(steps)

    def __contains__(self, key_step: object) -> bool:
        """``(metric name as stored, step) in held``."""
        if not isinstance(key_step, tuple) or len(key_step) != 2:
            return False
        held = self._steps.get(key_step[0])
        return held is not None and key_step[1] in held

    def __bool__(self) -> bool:
        return bool(self._steps)

    @property
    def metrics(self) -> int:
        """How many metrics have held points."""
        return len(self._steps)

    @property
    def points(self) -> int:
        """How many distinct (metric, step) pairs are held."""
        return sum(len(held) for held in self._steps.values())

    @property
    def steps(self) -> int:
        """How many distinct steps are held, over all metrics."""
        return _count_union(r for held in self._steps.values() for r in held.ranges())

    def summary(self) -> str:
        """``"<steps> steps (<points> points of <metrics> metrics)"``, for the log line of a reopened run."""
        return f"{self.steps} steps ({self.points} points of {self.metrics} metrics)"

    def new_points(self, points: Sequence[Any]) -> list[Any]:
        """The MLflow ``Metric`` points among ``points`` whose ``(key, step)`` is not held."""
        return [point for point in points if (point.key, point.step) not in self]
