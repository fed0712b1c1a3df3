"""The TensorBoard plugin: one tensorboardX ``SummaryWriter`` (one TensorBoard run) per Tune trial.

Mapping (docs/tensorboard.md has the user's version):

- trial start  -> a writer in the trial's directory (or ``<logdir>/<trial_name>``); on a resume without an
  open writer (``Tuner.restore``), ``purge_step=last_step + 1`` so TensorBoard hides what a crashed attempt
  wrote past the restored step, and no step shows twice.
- result       -> ONE event per result: scalars, histograms (lists/arrays) and texts (strings) of it, at its
  step (a step that comes again after a PBT exploit is written again; see docs/tensorboard.md for how
  TensorBoard shows it).
- config update (PBT exploit) -> one event at the step the trial continues from: the scalar
  ``trackbridge/exploit`` = 1 and the text ``trackbridge/exploit_config`` naming the changed keys.
- in-trial log -> ONE event per call, the same way, at ``global_step`` = the call's own step; files are
  skipped (TensorBoard has no artifacts), one warning, each one counted.
- complete     -> a ``trial_status`` text, the writer closed, and the HParams session (config + status) in
  a small event file of its own, replaced when the trial ends again after a resume.
- flush        -> every open writer flushed.
"""

from __future__ import annotations

import glob
import itertools
import os
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trackbridge import ExperimentInfo, LoggedFile, StoredSummary, TrackerPlugin, TrialInfo, TrialStatus, hookimpl
from trackbridge_tensorboard import duplicates
from trackbridge_tensorboard.options import TensorBoardOptions

#: Every event file this plugin writes ends with one of these, so it can tell its files from others'.
EVENTS_SUFFIX = ".trackbridge"
HPARAMS_SUFFIX = ".trackbridge-hparams"
#: The text tag (and HParams hparam) telling how the trial ended.
STATUS_TAG = "trial_status"
_MAX_ERROR_CHARS = 4000
_file_counter = itertools.count()


@dataclass
class _Run:
    """The TensorBoard run of one trial."""

    logdir: str
    writer: Any = None  # tensorboardX.SummaryWriter while the trial runs; None once closed
    last_step: int | None = None
    started: float = field(default_factory=time.time)
    #: tag -> kind (scalar/histogram/text) of its first value: TensorBoard keeps the first kind of a tag.
    kinds: dict[str, str] = field(default_factory=dict)


def _unique_suffix(kind: str) -> str:
    # tensorboardX names files events.out.tfevents.<seconds>.<host><suffix> and opens them with "wb": two
    # writers opened in the same second in one directory would truncate each other without this.
    return f".{os.getpid()}.{next(_file_counter):06d}{kind}"


def _safe_name(name: str) -> str:
    return name.replace(os.sep, "_").replace("/", "_") or "trial"


class TensorBoardPlugin(TrackerPlugin[TensorBoardOptions], name="tensorboard", requires=("tensorboardX",)):
    """Write each Tune trial as a TensorBoard run; open with ``tensorboard --logdir <experiment dir>``."""

    def reset_state(self) -> None:
        super().reset_state()
        self._runs: dict[str, _Run] = {}
        self._experiment: ExperimentInfo | None = None
        self._summaries: Any = None

    # -------------------------------------------------------------------------- hints for tools
    def companion_callbacks(self) -> list[Any]:
        """``[SuppressTuneTBXLogger()]``, which keeps Tune's own TensorBoard logger from writing every result a
        second time into the trial directories this plugin writes to; none when ``logdir`` sends the runs
        elsewhere."""
        if self.options.logdir:
            return []
        from trackbridge_tensorboard.tune_logger import SuppressTuneTBXLogger  # imports Ray

        return [SuppressTuneTBXLogger()]

    def view_command(self, experiment: ExperimentInfo | None) -> str | None:
        """``tensorboard --logdir <logdir option, else the experiment's local directory>``."""
        logdir = self.options.logdir
        if logdir is None and experiment is not None:
            logdir = experiment.path if experiment.filesystem is None else experiment.local_path
        return f"tensorboard --logdir {shlex.quote(logdir)}" if logdir else None

    def stored_summary(self, experiment: ExperimentInfo) -> StoredSummary | None:
        """The runs under the ``logdir`` option, else the experiment's local directory, read back with
        TensorBoard's own reader."""
        from trackbridge_tensorboard.stored import summarize

        logdir = self.options.logdir or (experiment.path if experiment.filesystem is None else experiment.local_path)
        return summarize(logdir) if logdir else None

    def tracker_destination(self) -> str | None:
        """The ``logdir`` option (absolute); None when runs are written into Tune's trial directories."""
        return os.path.abspath(self.options.logdir) if self.options.logdir else None

    # -------------------------------------------------------------------------- helpers
    @property
    def skipped(self) -> dict[str, int]:
        """Values skipped or converted, by warning key (for tests and the curious)."""
        return dict(self.warn.counts)

    def _run_dir(self, trial: TrialInfo) -> str:
        if self.options.logdir:
            return os.path.join(self.options.logdir, _safe_name(trial.trial_name))
        if trial.path and trial.filesystem is None:
            return trial.path  # written in place: a running TensorBoard sees it without waiting for a sync
        if trial.local_path:
            return trial.local_path  # Tune's driver staging directory, synced to remote storage by Tune
        fallback = os.path.abspath(
            os.path.join("tensorboard", _safe_name(trial.experiment_name or "experiment"), _safe_name(trial.trial_name))
        )
        self.warn("no-trial-dir", f"trial {trial.trial_name} has no directory; writing to {fallback} (set logdir=)")
        return fallback

    def _open(self, run: _Run, purge_step: int | None) -> None:
        from tensorboardX import SummaryWriter

        os.makedirs(run.logdir, exist_ok=True)
        run.writer = SummaryWriter(
            logdir=run.logdir,
            max_queue=100,
            flush_secs=self.options.flush_secs,
            filename_suffix=_unique_suffix(EVENTS_SUFFIX),
        )
        _write_synchronously(run.writer, purge_step)

    def _run_for(self, trial: TrialInfo) -> _Run:
        """The trial's open run; opens one if a hook arrives for a trial whose start failed."""
        run = self._runs.get(trial.trial_id)
        if run is None or run.writer is None:
            self.trackbridge_trial_start(trial, resumed=run is not None, last_step=run.last_step if run else None)
            run = self._runs[trial.trial_id]
        return run

    # -------------------------------------------------------------------------- hooks
    @hookimpl
    def trackbridge_setup(self) -> None:
        import tensorboardX  # noqa: F401  - the slow import, done while Tune starts its trials

        from trackbridge_tensorboard import summaries

        self._summaries = summaries

    @hookimpl
    def trackbridge_experiment_start(self, experiment: ExperimentInfo) -> None:
        self._experiment = experiment
        # a replay runs no Tune logger (what Tune's TBX logger wrote during the run is in the folder already)
        running_under_tune = not experiment.replayed and (
            experiment.local_path is not None or experiment.path is not None
        )
        if running_under_tune and not self.options.logdir and self.options.tune_logger_active():
            self.warn("tune-tbx-logger", duplicates.WARNING)

    @hookimpl
    def trackbridge_trial_start(self, trial: TrialInfo, resumed: bool, last_step: int | None) -> None:
        run = self._runs.get(trial.trial_id)
        if run is not None and run.writer is not None:
            return  # paused and resumed, or retried, in this process: the run continues as it is
        if run is None:
            run = self._runs[trial.trial_id] = _Run(logdir=self._run_dir(trial))
        # A resume without an open writer (restore, or a restart after the trial ended): hide whatever the
        # earlier attempt wrote past the step the trial continues from.
        purge_step = (last_step or 0) + 1 if resumed else None
        run.last_step = last_step
        self._open(run, purge_step)

    @hookimpl
    def trackbridge_trial_config_update(self, trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
        """The exploit point, at the step the trial continues from (its next results are step + 1, ...)."""
        run = self._run_for(trial)
        at = step or 0
        values = self._summaries.exploit_values(at, changes, run.kinds)
        if values:
            run.writer.file_writer.add_summary(self._summaries.summary(values), at, time.time())

    @hookimpl
    def trackbridge_trial_result(
        self, trial: TrialInfo, step: int, metrics: Mapping[str, Any], timestamp: float
    ) -> None:
        run = self._run_for(trial)
        self._write(run, metrics, step, timestamp)
        run.last_step = step

    @hookimpl
    def trackbridge_trial_log(
        self, trial: TrialInfo, step: int, values: Mapping[str, Any], files: Sequence[LoggedFile], timestamp: float
    ) -> None:
        for file in files:
            self.warn(
                "files", f"TensorBoard stores no files; {file.name!r} (logged by trial {trial.trial_name}) skipped"
            )
        # The call's own step is the global step; run.last_step stays the results' (status text, purge_step).
        self._write(self._run_for(trial), values, step, timestamp)

    def _write(self, run: _Run, values: Mapping[str, Any], step: int, timestamp: float) -> None:
        """One event holding every value TensorBoard can show (``summaries.result_values``)."""
        s = self._summaries
        summary_values = s.result_values(values, run.kinds, self.options.tag, self.warn)
        if summary_values:
            run.writer.file_writer.add_summary(s.summary(summary_values), step, timestamp)

    @hookimpl
    def trackbridge_trial_complete(self, trial: TrialInfo, status: TrialStatus, error: str | None) -> None:
        run = self._run_for(trial)
        step = run.last_step or 0
        now = time.time()
        text = status.value
        if status is TrialStatus.FAILED and error:
            text = f"**failed**\n\n```\n{error[-_MAX_ERROR_CHARS:]}\n```"
        if run.kinds.setdefault(STATUS_TAG, "text") == "text":
            status_text = self._summaries.summary([self._summaries.text_value(STATUS_TAG, text)])
            run.writer.file_writer.add_summary(status_text, step, now)
        writer, run.writer = run.writer, None
        writer.close()
        if self.options.hparams:
            self._write_hparams(run, trial, status, step, now)

    def _write_hparams(self, run: _Run, trial: TrialInfo, status: TrialStatus, step: int, now: float) -> None:
        """The trial's HParams session, alone in a small event file replacing the one of an earlier end.

        TensorBoard keeps the FIRST metadata it reads for a tag of a run, so a second session record in the
        same run would be ignored: after a failed trial is resumed and completes, its old record would win.
        Keeping the record in its own file, replaced at every end, leaves exactly one per run.
        """
        from tensorboardX import FileWriter

        hparams = dict(trial.config)
        hparams.setdefault(STATUS_TAG, status.value)
        start, end = self._summaries.session_summaries(hparams, status, start_time=run.started, end_time=now)
        stale = glob.glob(os.path.join(glob.escape(run.logdir), "events.out.tfevents.*" + HPARAMS_SUFFIX))
        writer = FileWriter(run.logdir, filename_suffix=_unique_suffix(HPARAMS_SUFFIX))
        try:
            writer.add_summary(start, step, now)
            writer.add_summary(end, step, now)
        finally:
            writer.close()
        for path in stale:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass

    @hookimpl
    def trackbridge_flush(self) -> None:
        for run in self._runs.values():
            if run.writer is not None:
                run.writer.flush()

    @hookimpl
    def trackbridge_experiment_end(self, experiment: ExperimentInfo) -> None:
        errors = []
        for trial_id, run in self._runs.items():
            if run.writer is not None:
                writer, run.writer = run.writer, None
                try:
                    writer.close()
                except Exception as exc:  # close the others before reporting
                    errors.append(f"{trial_id}: {exc!r}")
        self._runs.clear()
        if errors:
            raise RuntimeError("closing TensorBoard writers failed: " + "; ".join(errors))


def _write_synchronously(writer: Any, purge_step: int | None) -> None:
    """Make ``writer`` write each event to its file at once, so that ``flush()`` makes everything written so far
    durable (the delivery journal counts on it: ``durable_after_flush``).

    tensorboardX (2.6) queues events to a worker thread through a ``multiprocessing.Queue`` and its ``flush()``
    flushes the file but not that queue: a driver killed right after a flush lost the queued events, which the
    journal already counted as held (found by the preemption test). It has no public synchronous mode, so the
    event file writer's ``add_event`` is pointed at its own record writer (private attributes: ``_ev_writer``);
    its worker thread then only idles, and ``close()`` works as before. ``purge_step`` is written here, as
    ``SummaryWriter(purge_step=...)`` writes it (a file version and a session start at that step), so that it
    precedes every event of the new file."""
    from tensorboardX.proto.event_pb2 import Event, SessionLog

    event_writer = writer.file_writer.event_writer
    event_writer.add_event = event_writer._ev_writer.write_event
    if purge_step is not None:
        writer.file_writer.add_event(Event(step=purge_step, file_version="brain.Event:2"))
        writer.file_writer.add_event(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))
