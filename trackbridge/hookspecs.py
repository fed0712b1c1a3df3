"""The hook specification: the contract between TrackBridge and every tracker plugin.

A plugin is an object (usually an instance of a class, or a module) with methods marked ``@hookimpl`` whose
names are the hooks below. It implements only the hooks it needs, and each implementation may accept any
subset of the spec's arguments (pluggy's rule), so plugins keep working when a hook gains an argument.

The call sequence, per plugin, for one ``Tuner.fit()``::

    trackbridge_setup()                                   once, first
    trackbridge_experiment_start(experiment)              once, before any trial event
      for each trial, in this order:
        trackbridge_trial_start(trial, resumed, last_step)
          trackbridge_trial_config_update(trial, step, changes)   only after a resumed start: a new config, or a
                                                                  branch (the trial continues from another
                                                                  trial's checkpoint: a PBT exploit)
          trackbridge_trial_result(trial, step, metrics, timestamp)   step rising within a branch, never the same
                                                                      step twice in one; after a branch it may
                                                                      go back (to the config update's step + 1)
          trackbridge_trial_checkpoint(trial, checkpoint)             after the result of its step
          trackbridge_trial_log(trial, step, values, files, timestamp)   values logged inside the trial
        trackbridge_trial_complete(trial, status, error)  exactly once per trial start sequence
      (events of different trials interleave)
      trackbridge_flush()                                 whenever the plugin's queue runs dry, and before
                                                          every trial_complete and experiment_end
    trackbridge_experiment_end(experiment)                once, last: close everything

Steps and branches: a trial's results are a sequence of *branches*. The first starts with the trial; a new one
starts with each ``trackbridge_trial_config_update`` that marks a branch, when the trial continues from another
trial's checkpoint (PBT's exploit: the donor's weights, usually a new config). Within a branch the step rises and
no step reaches one plugin twice: results a trial re-reports after a retry or a restore from its own checkpoint
(replays) are dropped by TrackBridge (after ``Tuner.restore``, per plugin, by what that plugin's delivery journal
says it holds), so a plugin never drops results itself. A new branch continues from the donor checkpoint's step,
so its steps may repeat steps delivered before: those are new results (another config, another lineage), and a
plugin stores them again at their step. A plugin need not tell a branch from a plain config change: it stores
every result it gets at its step.

Threading: every hook of one plugin is called on that plugin's own worker thread (one thread per plugin,
never Tune's thread), one call at a time, so a plugin needs no locks for its own state. Different plugins run
on different threads, concurrently.

Errors: an exception raised by a hook is caught, logged with the plugin's name, the hook and the trial, and
counted; it never reaches Tune and never stops the other plugins. Don't swallow errors you cannot handle:
raising is how a plugin reports that an event was not delivered.

Metadata a plugin class may declare (read without instantiating it, e.g. by ``trackbridge plugins``):

- ``requires``: tuple of importable module names the plugin needs (``("mlflow",)``); if one is missing,
  construction fails with ``install_hint``.
- ``install_hint``: what to install, e.g. ``'pip install "trackbridge[mlflow]"'``.

Options: a plugin named in ``plugins={"name": {...}}`` is constructed with those options as keyword
arguments on the user's thread, when ``TrackBridgeCallback`` is constructed. The constructor must only
validate and store options (raise ``TypeError``/``ValueError`` for bad ones): no I/O, no threads, no tracker
handles, because Tune pickles the callback before the run. Open resources in ``trackbridge_setup`` or
``trackbridge_experiment_start``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trackbridge.events import CheckpointInfo, ExperimentInfo, LoggedFile, TrialInfo, TrialStatus
from trackbridge.markers import PROJECT_NAME, hookspec


@hookspec
def trackbridge_setup() -> None:
    """Prepare the tracker: the first call a plugin receives, once per ``Tuner.fit()``.

    Called as soon as Tune sets up its callbacks, before any trial exists and before the experiment's name
    is known. Do the slow, experiment-independent work here (import the tracker SDK, open a store, log in)
    so it overlaps with Tune starting its trials.
    """


@hookspec
def trackbridge_experiment_start(experiment: ExperimentInfo) -> None:
    """The experiment is known: called once, after ``trackbridge_setup`` and before any trial event.

    :param experiment: its name, storage path, and whether it is a restored experiment
        (``experiment.resumed``).
    """


@hookspec
def trackbridge_trial_start(trial: TrialInfo, resumed: bool, last_step: int | None) -> None:
    """A trial starts (or continues): open or reopen this trial's tracker run.

    :param trial: the trial; ``trial.config`` is its flattened, redacted config.
    :param resumed: False the first time TrackBridge sees this trial. True when the same trial starts
        again: after ``Tuner.restore``, after Tune retried it following a failure, or when a scheduler (PBT,
        HyperBand) resumes it after a pause. A resumed trial must continue its existing run, never open a
        second one.
    :param last_step: the step this plugin already holds for the trial, None if none: in a restored
        experiment, at the trial's first start, the highest step this plugin durably holds per its delivery
        journal (what it had flushed before the driver stopped), else the step of the last result delivered
        for the trial (after a branch that may be lower than steps delivered before it). Results at or below
        it are replays and are not delivered again, until the trial branches (see
        ``trackbridge_trial_config_update``), except steps the journal lists as *missing* (their delivery
        had failed): those come again, below ``last_step`` (after a restore, or from
        ``trackbridge replay --only-missing``). A plugin that can truncate history (TensorBoard's
        ``purge_step``) may use ``last_step + 1``.

    A start may come again without a ``trackbridge_trial_complete`` in between (pause, retry, restore).
    """


@hookspec
def trackbridge_trial_config_update(trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
    """A resumed trial continues with a different config, or from another trial's checkpoint (a branch).

    Called right after ``trackbridge_trial_start(resumed=True)``, in two cases:

    - a **branch**: the trial continues from another trial's checkpoint (PBT's exploit). ``step`` is that
      checkpoint's step (the donor's), which may be lower than steps already delivered for this trial; its
      next results are ``step + 1``, ``step + 2``, ... again, and they are new results, not replays.
      ``changes`` may be empty (the exploit kept the config).
    - the config changed without a branch (e.g. a trial restored with another config): ``step`` is the last
      step delivered before the change.

    ``trial.config`` is the new config; ``changes`` holds only the flattened keys whose value changed (or
    appeared), with their new values. ``step`` is the step the trial continues from: the first result under
    the new config is ``step + 1``; None when nothing had been delivered (and the checkpoint's step is
    unknown). The first-party plugins mark the point at ``step`` as the number ``trackbridge/exploit`` = 1
    (an MLflow metric, a W&B history row with ``training_iteration`` = ``step``, a TensorBoard scalar plus
    the text ``trackbridge/exploit_config`` naming the changed keys).
    """


@hookspec
def trackbridge_trial_result(trial: TrialInfo, step: int, metrics: Mapping[str, Any], timestamp: float) -> None:
    """One result reported by the trial (``tune.report``).

    :param step: Tune's ``training_iteration``. It rises strictly within a branch, and no step is delivered
        twice to one plugin within a branch: results a retried or restored trial re-reports at or below what
        this plugin already holds are dropped (the exceptions: a result the plugin accepted but had not
        flushed when the driver was killed may come again after ``Tuner.restore``; a step whose delivery
        failed before (a *missing* step of the delivery journal) is delivered when it comes again, below
        ``last_step``: store it at its step). After a
        ``trackbridge_trial_config_update`` that marks a branch (PBT's exploit) the step may go back, to that
        update's ``step + 1``: store those results at their step again (MLflow: a second point at the step;
        TensorBoard: an event at the step; W&B: a new row, W&B's own ``_step`` rising), never drop them.
    :param metrics: the result flattened with ``/`` (``{"eval/loss": 0.3}``), Tune's auto-filled fields
        removed (unless the user asked for them) and the user's ``excludes`` applied. Values are as the
        trainable reported them: numbers, bools, numpy scalars and arrays, lists, strings, None, NaN. Use
        ``trackbridge.classify`` to treat them the same way every plugin does.
    :param timestamp: seconds since the epoch when TrackBridge received the result.

    A buffering plugin should only buffer here and write in ``trackbridge_flush``.
    """


@hookspec
def trackbridge_trial_checkpoint(trial: TrialInfo, checkpoint: CheckpointInfo) -> None:
    """Tune persisted a checkpoint of the trial.

    ``checkpoint.path`` lives on ``checkpoint.filesystem`` (None: local); ``with checkpoint.local_copy() as
    directory:`` gives its files in a local directory (downloaded when remote, removed after the block).
    Tune may delete old checkpoints (``CheckpointConfig(num_to_keep=...)``): ``local_copy`` then raises
    ``CheckpointGone``; let it propagate, so the checkpoint is counted as not delivered, never silently skipped.
    """


@hookspec
def trackbridge_trial_log(
    trial: TrialInfo, step: int, values: Mapping[str, Any], files: Sequence[LoggedFile], timestamp: float
) -> None:
    """Values logged from inside the trial: ``trackbridge.log(values, step=...)`` and
    ``trackbridge.log_artifact(path)`` in a trainable or in a Ray Train worker, routed to the driver.

    :param step: the trial's own step for these values: the ``step=`` the code passed, else a per-trial
        counter of ``trackbridge.log`` calls (1, 2, ...). It is a step axis of its own, independent of the
        results' ``training_iteration``; it need not rise and may repeat (a restarted trial counts anew).
        Map it the way the tracker keeps a second axis: W&B declares it with ``define_metric`` (its own
        ``_step`` keeps rising), MLflow logs the metrics at this step, TensorBoard uses it as the global step.
    :param values: flattened with ``/``, as logged: numbers, strings, arrays and lists, and objects the
        code built for one tracker (e.g. ``wandb.Image``). A plugin stores what its tracker can and skips the
        rest with one warning per key (``WarnOnce``), so it is counted, never silently lost.
    :param files: files logged with ``log_artifact``, already copied to the driver (``LoggedFile.path`` is a
        local path, ``LoggedFile.name`` the name to store it under); empty for a values-only call. A
        tracker without artifacts skips them with a warning.
    :param timestamp: seconds since the epoch when the trial logged them.

    Calls for one trial come between its ``trackbridge_trial_start`` and its ``trackbridge_trial_complete``,
    in the order the trial logged them (per Ray Train worker when several ranks log); relative to the
    trial's results they are ordered only loosely (they travel on a channel of their own).
    """


@hookspec
def trackbridge_trial_complete(trial: TrialInfo, status: TrialStatus, error: str | None) -> None:
    """The trial ended: finish its tracker run.

    :param status: ``COMPLETED`` (success), ``FAILED`` (the trainable raised; ``error`` has the error text),
        or ``UNFINISHED`` (the experiment ended or was interrupted while the trial was still paused,
        pending or running; Tune itself sends nothing for those).

    ``trackbridge_flush`` has been called just before, so all of this trial's results have been handed over.
    """


@hookspec
def trackbridge_flush() -> None:
    """Write what is buffered.

    Called when the plugin's queue runs dry (at most every ``flush_interval`` seconds while results keep
    arriving), and always before ``trackbridge_trial_complete`` and ``trackbridge_experiment_end``.
    """


@hookspec
def trackbridge_experiment_end(experiment: ExperimentInfo) -> None:
    """The last call: every trial has been completed; close every handle and release resources.

    ``Tuner.fit()`` waits (up to the callback's ``drain_timeout``) for this call to return.
    """


ALL_HOOKS: tuple[str, ...] = tuple(
    name for name in list(globals()) if name.startswith(f"{PROJECT_NAME}_") and callable(globals()[name])
)

__all__ = [
    "ALL_HOOKS",
    "PROJECT_NAME",
    "CheckpointInfo",
    "ExperimentInfo",
    "LoggedFile",
    "TrialInfo",
    "TrialStatus",
    "hookspec",
]
