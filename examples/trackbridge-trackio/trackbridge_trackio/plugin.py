"""``TrackioPlugin``: one Trackio run per Tune trial.

Mapping: Trackio project = ``project`` option, else the Tune experiment's name; run name = Tune's trial name
(resumed by that name); the run's config = the trial's flattened config plus ``trackbridge/trial_id`` and
``trackbridge/experiment``; every numeric value of a result at its step (``training_iteration``); values
logged inside the trial at their own step, under their own names; the end of a trial as a Trackio alert
(``Trial completed`` INFO, ``Trial failed`` ERROR with the error text, ``Trial unfinished`` WARN).
"""

from __future__ import annotations

import contextvars
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trackbridge import (
    SCALAR,
    TEXT,
    ExperimentInfo,
    LoggedFile,
    PluginOptions,
    TrackerPlugin,
    TrialInfo,
    TrialStatus,
    classify,
    hookimpl,
    option,
    to_float,
)

#: How each ending is recorded: the alert's title and level.
ENDINGS = {
    TrialStatus.COMPLETED: ("Trial completed", "info"),
    TrialStatus.FAILED: ("Trial failed", "error"),
    TrialStatus.UNFINISHED: ("Trial unfinished", "warn"),
}


def _no_empty(value: str | None) -> None:
    if value is not None and not value.strip():
        raise ValueError("must not be empty")


@dataclass(frozen=True)
class TrackioOptions(PluginOptions):
    project: str | None = option(None, doc="the Trackio project (default: the Tune experiment's name)", check=_no_empty)
    group: str | None = option(None, doc="the runs' Trackio group (default: the Tune experiment's name)")
    directory: str | None = option(
        None,
        doc="Trackio's storage folder ($TRACKIO_DIR; default: Trackio's own). Trackio reads it once per process, "
        "when it is imported: every trackio plugin of one process must use the same folder",
        convert=lambda v: None if v is None else os.fspath(v),
    )
    alerts: bool = option(True, doc="record each trial's end as a Trackio alert (its status)")


class TrackioPlugin(TrackerPlugin[TrackioOptions], name="trackio", requires=("trackio",)):
    install_hint = 'pip install "trackbridge-trackio"'
    #: Trackio writes from a background thread every 0.5 s and has no public flush: what a flush handed over
    #: is durable once the run finished (``Run.finish`` joins that thread).
    durable_after_flush = False

    def reset_state(self) -> None:
        super().reset_state()
        self.trackio: Any = None
        self.experiment: str | None = None
        self.runs: dict[str, Any] = {}  # trial id -> trackio Run
        self.pending: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # trial id -> (step, values) to log

    # ------------------------------------------------------------------ setup
    @hookimpl
    def trackbridge_setup(self) -> None:
        wanted = self.options.directory
        if wanted is not None:
            loaded = sys.modules.get("trackio.utils")
            if loaded is not None and Path(loaded.TRACKIO_DIR).resolve() != Path(wanted).resolve():
                raise ValueError(
                    f"Trackio in this process already stores under {loaded.TRACKIO_DIR} (it reads TRACKIO_DIR once, "
                    f"when imported); directory={wanted!r} cannot apply. Use one folder per process."
                )
            os.environ["TRACKIO_DIR"] = str(Path(wanted).resolve())
        import trackio

        self.trackio = trackio

    @hookimpl
    def trackbridge_experiment_start(self, experiment: ExperimentInfo) -> None:
        self.experiment = experiment.name

    # ------------------------------------------------------------------ runs
    def _open(self, trial: TrialInfo) -> Any:
        experiment = self.experiment or trial.experiment_name
        config = {**trial.config, "trackbridge/trial_id": trial.trial_id, "trackbridge/experiment": experiment}
        # trackio.init finishes the "current run" of the calling context before it starts another; an empty
        # context per run (standard contextvars) lets one thread keep every trial's run open at once.
        return contextvars.Context().run(
            self.trackio.init,
            project=self.options.project or experiment,
            name=trial.trial_name,
            group=self.options.group or experiment,
            config=config,
            resume="allow",  # the same trial again (pause, retry, Tuner.restore): the same run, by its name
            embed=False,
            auto_log_cpu=False,
            auto_log_gpu=False,
        )

    def _run(self, trial: TrialInfo) -> Any:
        run = self.runs.get(trial.trial_id)
        if run is None:  # a result for a trial whose start this process never saw (e.g. after a restore)
            run = self.runs[trial.trial_id] = self._open(trial)
        return run

    @hookimpl
    def trackbridge_trial_start(self, trial: TrialInfo) -> None:
        if trial.trial_id not in self.runs:
            self.runs[trial.trial_id] = self._open(trial)

    @hookimpl
    def trackbridge_trial_config_update(self, trial: TrialInfo, step: int | None, changes: Mapping[str, Any]) -> None:
        # Trackio stores a run's config once; the change is recorded at its step: a mark and the new numbers.
        self._run(trial)
        marked = {"trackbridge/exploit": 1.0}
        marked |= {f"config/{k}": to_float(v) for k, v in changes.items() if classify(v) == SCALAR}
        self.pending.setdefault(trial.trial_id, []).append((step or 0, marked))

    # ------------------------------------------------------------------ values
    def _numbers(self, values: Mapping[str, Any], what: str) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for key, value in values.items():
            kind = classify(value)
            if kind == SCALAR:
                kept[key] = to_float(value)  # NaN and infinities included: Trackio stores them as such
            elif kind == TEXT:
                kept[key] = value
            else:
                self.warn(key, f"{what} {key!r} ({type(value).__name__}) is not a number or text; not stored")
        return kept

    @hookimpl
    def trackbridge_trial_result(self, trial: TrialInfo, step: int, metrics: Mapping[str, Any]) -> None:
        self._run(trial)
        self.pending.setdefault(trial.trial_id, []).append((step, self._numbers(metrics, "metric")))

    @hookimpl
    def trackbridge_trial_log(
        self, trial: TrialInfo, step: int, values: Mapping[str, Any], files: Sequence[LoggedFile]
    ) -> None:
        self._run(trial)
        kept = self._numbers(values, "logged value")
        if kept:
            self.pending.setdefault(trial.trial_id, []).append((step, kept))
        for logged in files:
            self.warn(f"file:{logged.name}", f"logged file {logged.name!r} not stored: Trackio keeps no local files")

    @hookimpl
    def trackbridge_flush(self) -> None:
        for trial_id, entries in self.pending.items():
            run = self.runs[trial_id]  # opened by the hook that queued the entries
            for step, values in entries:
                if values:
                    run.log(values, step=step)
            entries.clear()

    # ------------------------------------------------------------------ endings
    @hookimpl
    def trackbridge_trial_complete(self, trial: TrialInfo, status: TrialStatus, error: str | None) -> None:
        run = self._run(trial)
        if self.options.alerts:
            title, level = ENDINGS[status]
            run.alert(title, text=error, level=self.trackio.AlertLevel(level))
        run.finish()  # joins Trackio's writer thread: everything logged is in its database after this
        del self.runs[trial.trial_id]
        self.pending.pop(trial.trial_id, None)

    @hookimpl
    def trackbridge_experiment_end(self) -> None:
        for run in self.runs.values():  # TrackBridge completes every trial first; this is a safety net
            run.finish()
        self.runs.clear()

    @classmethod
    def offline_options(cls, directory: str) -> dict[str, Any]:
        """Trackio is local by default; its folder is per process, so this names none (see ``directory``)."""
        return {}

    def view_command(self, experiment: ExperimentInfo | None) -> str | None:
        project = self.options.project or (experiment.name if experiment else None)
        return f'trackio show --project "{project}"' if project else None
