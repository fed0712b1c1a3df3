"""The delivery journal: what one plugin has durably delivered, per trial, kept with the experiment.

Why: after a crash (SIGKILL) or a preemption (SIGTERM), ``Tuner.restore`` re-runs each trial from its last
checkpoint, and Tune re-reports the steps after it. Which of those the tracker already holds, only the
tracker side knows: Tune's own experiment checkpoint (where the callback's state lives) is saved
periodically and lags behind. So each plugin's transport keeps a journal:

- a result the plugin's hook accepted is *delivered*; it becomes *durable* once the plugin's
  ``trackbridge_flush`` has returned after it (at once for a plugin without a flush hook);
- after each flush that made something durable, the journal file ``trackbridge_journal/<plugin>.json`` (with
  ``-<hash>`` of the plugin's ``tracker_destination()`` when it names one: one file per destination) in
  the experiment directory is replaced (through the experiment's filesystem: local or remote storage; on
  remote storage at most every ``REMOTE_WRITE_INTERVAL`` seconds, and at each trial's end, branch and the
  experiment's end);
- in a restored experiment, a trial's first start reads the file: results at or below the step it names
  are replays for this plugin and are skipped (counted), and so are their checkpoints; the plugin's
  ``trial_start`` gets that step as ``last_step``. A new experiment's journal file is written (empty) as it
  starts. Without a journal file (an experiment from before the journal, or storage that refused it) the
  floor is the step Tune's state carried (``last_step`` of the start); a trial a journal file does not name
  has no floor (the plugin holds none of its results).

The floor holds until the trial branches (a PBT exploit continues it from another trial's checkpoint, and
its steps may go back): from then on every result is new.

A plugin whose flush does not make its writes durable says so with ``durable_after_flush = False`` (W&B:
its service process buffers the offline run file and loses the buffer when the driver is killed); its
results count as durable once their trial's run is completed.

Steps the plugin did not take are kept as *missing*: a result whose hook failed, and the results accepted
since the last flush when a flush (or the trial's completion) failed (the tracker may or may not hold those:
they are counted as missing, so ``trackbridge replay --only-missing`` sends them again, and a tracker that can
read its own state skips what it holds). A step at or below the floor that is missing is never a replay.
The journal also records the status each trial's run was completed with, so an ``--only-missing`` replay
leaves a trial alone that its tracker holds complete.

Modes (``HookCall.journal_mode`` of ``experiment_start``): ``live`` (a Tune run, the default), ``fill``
(``replay --only-missing``: trials the journal shows completed with nothing missing are skipped whole),
``ignore`` (a full replay: the file is not read; it is rewritten with what this replay delivered).

Limit: a result delivered but not yet flushed when the process is killed is not in the journal; if Tune
re-reports it, the plugin gets it again (a tracker that had written it anyway then holds it twice). Results
flushed after Tune's last trial checkpoint are not re-reported and are not lost.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Any

from trackbridge import experiment_files
from trackbridge.events import ExperimentInfo
from trackbridge.journal_files import destination_of, journal_entry, journal_name, read_journal
from trackbridge.transport import (
    EXPERIMENT_END,
    EXPERIMENT_START,
    TRIAL_CHECKPOINT,
    TRIAL_COMPLETE,
    TRIAL_CONFIG_UPDATE,
    TRIAL_LOG,
    TRIAL_RESULT,
    TRIAL_START,
    HookCall,
)

logger = logging.getLogger("trackbridge")

#: On remote storage (one upload per write) the journal is replaced at most this often, besides at each
#: trial's end, each branch and the experiment's end; on a local disk after every flush that changed it.
REMOTE_WRITE_INTERVAL = 5.0
#: Hooks the journal follows even for a plugin that does not implement them (they are not called then).
JOURNAL_HOOKS = frozenset({EXPERIMENT_START, TRIAL_START, TRIAL_CONFIG_UPDATE, TRIAL_COMPLETE, EXPERIMENT_END})
FORMAT_VERSION = 2
#: ``journal_mode`` values (see the module docstring).
LIVE, FILL, IGNORE = "live", "fill", "ignore"
#: Completion statuses after which Tune never sends the trial's results again.
_FINAL = frozenset({"completed", "failed"})


class DeliveryJournal:
    """One plugin's journal. Used on the plugin's delivery thread only (no locks)."""

    def __init__(self, plugin_name: str, durable_after_flush: bool = True, plugin: Any = None) -> None:
        self.plugin_name = plugin_name
        #: The plugin object: its ``tracker_destination()`` names the journal file (asked at experiment start).
        self._plugin = plugin
        self._file = journal_name(plugin_name)
        self._destination: str | None = None
        #: False for a tracker whose flush does not reach disk (W&B's service buffers the offline run file):
        #: its results count as durable only once their trial's run was completed.
        self.durable_after_flush = durable_after_flush
        self._experiment: ExperimentInfo | None = None
        #: Per trial, the steps of the results delivered and not yet flushed.
        self._pending: dict[str, set[int]] = {}
        #: Per trial, the step of the last result made durable (what the file says).
        self._durable: dict[str, int] = {}
        #: Per trial, steps the plugin did not take (failed, or unsure after a failed flush).
        self._missing: dict[str, set[int]] = {}
        #: Per trial, the status its run was last completed with (cleared when it starts again).
        self._status: dict[str, str] = {}
        #: Per trial, the highest durable step of each branch before the current one (PBT exploits).
        self._earlier: dict[str, list[int | None]] = {}
        #: ``fill`` mode: per trial, which branch of the journal's record the replay is in.
        self._fill_branch: dict[str, int] = {}
        #: What a restored experiment's journal said, per trial.
        self._restored: dict[str, int] = {}
        #: Per trial: results at or below are replays for this plugin (set at a restored trial's first start),
        #: except the missing steps.
        self._floors: dict[str, int] = {}
        #: Trials an ``--only-missing`` replay leaves alone (complete in the tracker, nothing missing).
        self._skipped_trials: set[str] = set()
        self._mode = LIVE
        #: Trials whose last result was skipped as a replay (their checkpoint is skipped too).
        self._replaying: set[str] = set()
        self._seen: set[str] = set()
        self._journal_found = False
        self._dirty = False
        self._last_write = 0.0
        self._write_failed = False
        #: Results and checkpoints not delivered to this plugin because it already holds them.
        self.skipped = 0

    # ------------------------------------------------------------------ before a call
    def admit(self, call: HookCall) -> HookCall | None:
        """The call to deliver (``trial_start`` carries this plugin's own last step), or None for a replay."""
        hook, trial_id = call.hook, call.trial_id
        if hook == EXPERIMENT_START:
            self._mode = call.journal_mode
            self._bind(call.kwargs["experiment"])
        elif trial_id is None:
            return call
        elif trial_id in self._skipped_trials:
            if hook in (TRIAL_RESULT, TRIAL_CHECKPOINT, TRIAL_LOG):
                self.skipped += 1
            return None
        elif hook == TRIAL_START:
            return self._started(call, trial_id)
        elif hook == TRIAL_CONFIG_UPDATE and call.branch:
            if self._held_branch(trial_id):
                return None
            self._floors.pop(trial_id, None)
        elif hook == TRIAL_RESULT:
            floor, step = self._floors.get(trial_id), call.kwargs["step"]
            missing = self._missing.get(trial_id, ()) if self._in_last_branch(trial_id) else ()
            if floor is not None and step <= floor and step not in missing:
                self._replaying.add(trial_id)
                self.skipped += 1
                return None
            self._replaying.discard(trial_id)
        elif hook == TRIAL_CHECKPOINT and trial_id in self._replaying:
            self.skipped += 1
            return None
        return call

    def _held_branch(self, trial_id: str) -> bool:
        """``fill`` mode: this branch is one the journal's record already holds (its floor comes next)."""
        if trial_id not in self._fill_branch:
            return False
        branch = self._fill_branch[trial_id] = self._fill_branch[trial_id] + 1
        earlier = self._earlier.get(trial_id, [])
        if branch > len(earlier):
            del self._fill_branch[trial_id]  # a branch the tracker never got: deliver it and all after it
            return False
        floor = earlier[branch] if branch < len(earlier) else self._restored.get(trial_id)
        if floor is None:
            self._floors.pop(trial_id, None)
        else:
            self._floors[trial_id] = floor
        return True

    def _in_last_branch(self, trial_id: str) -> bool:
        branch = self._fill_branch.get(trial_id)
        return branch is None or branch >= len(self._earlier.get(trial_id, []))

    def _started(self, call: HookCall, trial_id: str) -> HookCall | None:
        if trial_id in self._seen:
            return call
        self._seen.add(trial_id)
        if self._mode == FILL and self._status.get(trial_id) in _FINAL and not self._missing.get(trial_id):
            self._skipped_trials.add(trial_id)  # the tracker holds this trial complete: nothing to add
            return None
        if self._mode == FILL and self._earlier.get(trial_id):
            # A replay sends the trial's whole history: its first branch's floor first (see _held_branch).
            self._fill_branch[trial_id] = 0
            floor: int | None = self._earlier[trial_id][0]
            if floor is None:
                return call
            self._floors[trial_id] = floor
            return replace(call, kwargs={**call.kwargs, "resumed": True, "last_step": floor})
        if trial_id in self._restored:
            # The plugin holds this trial's run up to that step, even when Tune's own state had not seen the
            # trial report yet (its experiment checkpoint lagged): the start continues that run.
            floor = self._restored[trial_id]
        elif call.kwargs.get("resumed") and not self._journal_found:
            floor = call.kwargs.get("last_step")  # no journal: the step Tune's state carried
        else:
            return call
        if floor is None:
            return call
        self._floors[trial_id] = floor
        return replace(call, kwargs={**call.kwargs, "resumed": True, "last_step": floor})

    # ------------------------------------------------------------------ after a call
    def delivered(self, call: HookCall) -> None:
        """The plugin's hook accepted ``call``."""
        if call.hook == EXPERIMENT_END and self._dirty:
            self._write()
        if call.trial_id is None:
            return
        if call.hook == TRIAL_RESULT:
            self._pending.setdefault(call.trial_id, set()).add(call.kwargs["step"])
        elif call.hook == TRIAL_START:
            if self._status.pop(call.trial_id, None) is not None:  # it runs again: not complete any more
                self._dirty = True
        elif call.hook == TRIAL_CONFIG_UPDATE and call.branch:
            # The trial continues from the donor's step: what this plugin holds of the new branch ends there.
            # Written at once, so a crash before the next flush never restores the old branch's higher floor.
            self._make_durable(call.trial_id)
            self._earlier.setdefault(call.trial_id, []).append(self._durable.get(call.trial_id))
            self._missing.pop(call.trial_id, None)
            self._status.pop(call.trial_id, None)
            step = call.kwargs.get("step")
            if isinstance(step, int):
                self._durable[call.trial_id] = step
            else:
                self._durable.pop(call.trial_id, None)
            self._dirty = True
            self._write()
        elif call.hook == TRIAL_COMPLETE:
            self._make_durable(call.trial_id)
            status = call.kwargs.get("status")
            self._status[call.trial_id] = str(getattr(status, "value", status))
            self._dirty = True
            self._write()

    def failed(self, call: HookCall) -> None:
        """The plugin's hook raised for ``call`` (after retries): its step is missing; a failed completion also
        leaves the trial's unflushed results unsure (counted missing)."""
        if call.trial_id is None:
            return
        if call.hook == TRIAL_RESULT:
            self._missing.setdefault(call.trial_id, set()).add(call.kwargs["step"])
            self._dirty = True
        elif call.hook == TRIAL_COMPLETE:
            self._lose_pending(call.trial_id)

    def flush_failed(self) -> None:
        """The plugin's flush raised: whatever it accepted since the last flush may not be stored."""
        for trial_id in list(self._pending):
            self._lose_pending(trial_id)

    def _lose_pending(self, trial_id: str) -> None:
        steps = self._pending.pop(trial_id, None)
        if steps:
            self._missing.setdefault(trial_id, set()).update(steps)
            self._dirty = True

    def _make_durable(self, trial_id: str) -> None:
        steps = self._pending.pop(trial_id, None)
        if steps:
            self._durable[trial_id] = max(self._durable.get(trial_id, max(steps)), max(steps))
            missing = self._missing.get(trial_id)
            if missing:
                missing.difference_update(steps)
            self._dirty = True

    def flushed(self) -> None:
        """The plugin flushed: what it accepted before is durable; write the file if that changed."""
        if self._pending and self.durable_after_flush:
            for trial_id in list(self._pending):
                self._make_durable(trial_id)
        remote = self._experiment is not None and self._experiment.filesystem is not None
        if self._dirty and not (remote and time.monotonic() - self._last_write < REMOTE_WRITE_INTERVAL):
            self._write()

    # ------------------------------------------------------------------ the file
    def _bind(self, experiment: ExperimentInfo) -> None:
        # Read even when the experiment is not marked resumed (Tune may restore without handing back the
        # callback's state): trial ids are unique per experiment, so entries of another run never match.
        self._experiment = experiment
        destination = self._destination = destination_of(self._plugin)
        self._file = journal_name(self.plugin_name, destination)
        if self._mode == IGNORE:  # a full replay: deliver everything, whatever the file says
            return
        try:
            record = read_journal(experiment, self.plugin_name, destination, legacy=self._mode == LIVE)
        except (OSError, ValueError) as exc:
            logger.warning("trackbridge: plugin %r: its delivery journal is unreadable (%s)", self.plugin_name, exc)
            return
        self._journal_found = record is not None
        if record is not None:
            self._restored, self._missing, self._earlier, self._status = (
                record.steps,
                record.missing,
                record.earlier,
                record.status,
            )
        self._durable.update(self._restored)
        if record is None and self._mode == LIVE and not experiment.resumed:
            # A new experiment gets its (empty) journal at once: restored later, a trial it does not name is one
            # the plugin holds nothing of, never "an experiment from before the journal" whose floor is Tune's
            # last step (that floor dropped the steps a killed W&B service had buffered before the first trial
            # completed).
            self._dirty = True
            self._write()

    def _entry(self, trial_id: str) -> dict[str, Any]:
        return journal_entry(
            self._durable.get(trial_id),
            self._missing.get(trial_id),
            self._status.get(trial_id),
            self._earlier.get(trial_id),
        )

    def _write(self) -> None:
        document: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "plugin": self.plugin_name,
            "destination": self._destination,
            "written_at": time.time(),
            "trials": {
                tid: self._entry(tid) for tid in sorted(set(self._durable) | set(self._missing) | set(self._status))
            },
        }
        try:
            experiment_files.write_text(self._experiment, self._file, json.dumps(document))
        except Exception as exc:  # storage trouble must never stop delivery; the journal is best effort
            if not self._write_failed:
                logger.warning("trackbridge: plugin %r: cannot write its delivery journal: %s", self.plugin_name, exc)
            self._write_failed = True
            return
        self._dirty = False
        self._last_write = time.monotonic()
