"""One trial's open W&B run: the row counter behind W&B's ``_step``, and the x-axis of every key.

A run receives two kinds of rows: Tune's results (x-axis ``training_iteration``, rising, except that it goes
back after a PBT exploit, to the donor checkpoint's step + 1) and values logged inside the trial (x-axis
``trial_step``, their own step, which may repeat or restart). W&B's own ``_step`` must rise with every row, so
it is a per-run row counter, never either of those steps:

- a result row is logged at ``max(counter + 1, training_iteration)``: without in-trial logs and exploits
  ``_step`` equals ``training_iteration``, as it always did, and the parts an offline run writes around a
  restore keep disjoint steps; a result whose ``training_iteration`` went back is simply the next row;
- an exploit is a row of its own (``trackbridge/exploit`` = 1 at ``training_iteration`` = the step the trial
  continues from), logged like a result;
- an in-trial row is logged at ``counter + 1``.

Every key is declared once with ``define_metric``: result keys by the run's ``"*"`` glob
(``step_metric="training_iteration"``), in-trial keys one by one (``step_metric="trial_step"``) the first
time they are seen; both with ``step_sync=False``, as every row carries its own axis. A key logged both ways
keeps the axis it got first (W&B cannot change it), with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trackbridge import TrialInfo, WarnOnce
from trackbridge_wandb.convert import EXPLOIT_METRIC, LOG_STEP_METRIC, STEP_METRIC


@dataclass
class TrialRun:
    """One open W&B run and what the plugin must remember about it."""

    run: Any
    trial: TrialInfo
    #: The result step (``training_iteration``) the run is at, as far as the plugin knows: where the row counter
    #: of a reopened run starts. Results are never compared with it (the core drops replays; after a PBT
    #: exploit the next results' steps go back, and each is logged as a new row).
    last_step: int | None
    #: The last W&B ``_step`` used (or held by the run when it was reopened); every row gets a higher one.
    row: int = 0
    #: Keys logged by results (x-axis ``training_iteration``) and by in-trial logs (x-axis ``trial_step``).
    result_keys: set[str] = field(default_factory=set)
    log_keys: set[str] = field(default_factory=set)

    @classmethod
    def opened(cls, run: Any, trial: TrialInfo, last_step: int | None) -> TrialRun:
        """The state of a run just returned by ``wandb.init``: new, or resumed online with rows in it."""
        run.define_metric(STEP_METRIC)
        # Every row carries its own axis (training_iteration or trial_step), so step_sync is off throughout:
        # with it, W&B would copy the last value of the other axis into rows that are not of that kind (e.g.
        # training_iteration into in-trial rows holding a histogram or an image).
        run.define_metric("*", step_metric=STEP_METRIC, step_sync=False)
        # What the run already holds (online resume: W&B's own last step and its last summary).
        held_rows = (getattr(run, "starting_step", 0) or 0) - 1
        known = last_step
        if held_rows > 0:
            held_result = _summary_step(run)
            if held_result is None:  # no summary to tell: every row was a result, as before in-trial logs
                held_result = held_rows
            if known is None or held_result > known:
                known = held_result
        return cls(run=run, trial=trial, last_step=known, row=max(known or 0, held_rows, 0))

    def resumed(self, trial: TrialInfo, last_step: int | None) -> None:
        """The same trial started again while its run is open (scheduler pause, Tune retry)."""
        self.trial = trial
        if last_step is not None and (self.last_step is None or last_step > self.last_step):
            self.last_step = last_step
            self.row = max(self.row, last_step)

    def log_result(self, step: int, row: Mapping[str, Any], warn: WarnOnce) -> None:
        """Log one result's row at ``max(counter + 1, step)``; commit=True writes it now, not at the next row."""
        for key in row.keys() - self.result_keys:
            if key != STEP_METRIC:
                self.result_keys.add(key)
                if key in self.log_keys:
                    warn(f"axis:{key}", _both_ways(key, LOG_STEP_METRIC))
        self.row = max(self.row + 1, step)
        self.run.log(dict(row), step=self.row, commit=True)
        self.last_step = step

    def log_exploit(self, step: int, warn: WarnOnce) -> None:
        """The exploit point: a row ``{training_iteration: step, trackbridge/exploit: 1}`` (the next results are
        ``step + 1``, ...; their rows follow it, ``_step`` still rising)."""
        self.log_result(step, {STEP_METRIC: step, EXPLOIT_METRIC: 1}, warn)

    def log_values(self, row: Mapping[str, Any], warn: WarnOnce) -> None:
        """Log one in-trial row at ``counter + 1``, declaring its new keys against ``trial_step`` first."""
        if not self.log_keys:
            self.run.define_metric(LOG_STEP_METRIC)  # the axis itself, kept out of the "*" glob
        for key in row.keys() - self.log_keys:
            if key == LOG_STEP_METRIC:
                continue
            self.log_keys.add(key)
            if key in self.result_keys:
                warn(f"axis:{key}", _both_ways(key, STEP_METRIC))
            else:
                self.run.define_metric(key, step_metric=LOG_STEP_METRIC, step_sync=False)
        self.row += 1
        self.run.log(dict(row), step=self.row, commit=True)


def _both_ways(key: str, axis: str) -> str:
    return (
        f"{key!r} is logged both as a Tune result and inside the trial; W&B keeps one x-axis per key, "
        f"so it stays on {axis!r} (rename one of them to chart both)"
    )


def _summary_step(run: Any) -> int | None:
    """The last ``training_iteration`` a resumed run's summary holds (W&B loads it on resume), if any."""
    try:
        value = run.summary.get(STEP_METRIC)
    except Exception:  # a summary that cannot be read must not stop the run from opening
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
