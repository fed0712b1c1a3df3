"""``replay``: fill trackers from a Tune experiment's own records, after the fact.

The trials Tune recorded (``tune_records``) are sent through the same plugins, state machine and delivery as
a live run, trial by trial: each trial's start with its config, every result in the order Tune wrote it (at
its step, with Tune's timestamp), the checkpoints that still exist, its completion with the status Tune
recorded (``TERMINATED``: completed, ``ERROR``: failed with ``error.txt``, anything else: unfinished). Where
Tune restarted a trial (its config changed, or its steps do not simply go on): a PBT exploit when PBT's log
(``pbt_global.txt``) names one into the config of the next result, or when the config changed (a branch, as
live); otherwise a retry or restore (the re-run steps are replays, skipped as live). Exploits PBT logged after
a trial's last result are sent as branches at the end, as live.

Limit: a replay sends what Tune recorded. Tune's JSON logger copies ``result.json`` back from storage when a
trial restarts from a checkpoint (PBT exploit, retry), which can lose results reported since its last sync;
a live run delivered those. ``pbt_exploits_without_results`` counts exploits whose results are missing.

- ``only_missing=False``: everything is sent (each plugin's delivery journal is not read, and afterwards
  holds what this replay delivered). A journal that says the plugin already holds trials is warned about.
- ``only_missing=True``: the experiment is treated as restored. Per plugin, the journal's record decides
  (results at or below the step it names are skipped, except steps it lists as missing; trials it shows
  complete with nothing missing are skipped whole); where it has no record, the plugin continues the
  trial's existing run, and a tracker that can read its own state (MLflow) skips the steps it holds.

The delivery report is written as ``trackbridge_replay_report.json`` in the experiment folder, with a
``replay`` section: trials replayed, skipped (damaged files, with the reason), never started, checkpoints gone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from trackbridge import experiment_files, journal, journal_files, loading
from trackbridge.bridge import Bridge
from trackbridge.events import ExperimentInfo, TrialInfo, TrialStatus
from trackbridge.secrets import mask_uri
from trackbridge.trial_states import TrialStateMachine
from trackbridge.tune_records import (
    ERROR_STATUS,
    FINISHED_STATUS,
    NEVER_STARTED_STATUS,
    DamagedTrial,
    ExperimentRecord,
    Exploit,
    TrialRecord,
    open_experiment,
)
from trackbridge.tune_translate import (
    CHECKPOINT_DIR_KEY,
    TRAIN_CHECKPOINT_KEY,
    build_trial_info,
    clean_error,
    result_metrics,
    result_step,
)

logger = logging.getLogger("trackbridge")
REPLAY_REPORT_FILE = "trackbridge_replay_report.json"
#: ``progress(trials done, trials in all, name of the trial just done)``.
Progress = Callable[[int, int, str], None]


def replay(
    experiment_path: str,
    plugins: loading.PluginsArgument,
    *,
    only_missing: bool = False,
    storage_filesystem: Any = None,
    progress: Progress | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Replay the Tune experiment at ``experiment_path`` (a local path or a URI such as ``s3://bucket/exp``;
    with ``storage_filesystem``, a path on that ``pyarrow.fs`` filesystem) into ``plugins``.

    ``options``: ``TrackBridgeCallback``'s (``excludes``, ``include_auto_metrics``, ``redact``, ``isolate``,
    ``drain_timeout``, ...), so the runs match those of a live run with the same options. Returns the
    delivery report. Raises ``tune_records.NotATuneExperiment`` for a folder that is not a Tune experiment
    and ``PluginError`` for a bad plugin request; a trial with damaged files is reported and skipped.
    """
    record = open_experiment(experiment_path, storage_filesystem)
    bridge = Bridge(plugins, **options)
    experiment = ExperimentInfo(
        name=record.name,
        path=record.path,
        local_path=record.path if record.is_local else None,
        resumed=only_missing,
        filesystem=None if record.is_local else record.filesystem,
        replayed=True,
    )
    if not only_missing:
        _warn_about_journals(experiment, bridge.plugins())
    account: dict[str, Any] = {
        "source": mask_uri(str(experiment_path)),
        "only_missing": only_missing,
        "trials": len(record.trials),
        "trials_replayed": 0,
        "results_read": 0,
        "never_started": 0,
        "checkpoints_gone": 0,
        # PBT exploits whose results are not in Tune's result.json (see the docs' limits): not replayed.
        "pbt_exploits_without_results": 0,
        "skipped_trials": [{"trial": what, "reason": why} for what, why in record.problems if what.startswith("trial")],
        # e.g. a damaged newer experiment state, read past in favour of an older one
        "notes": [f"{what}: {why}" for what, why in record.problems if not what.startswith("trial")],
    }
    # --only-missing: every trial is "known from before", so its first start is a resume (the plugins look
    # for its existing run) and its journal record, where there is one, decides what the plugin still needs.
    restored: dict[str, Any] | None = {"trials": {t.trial_id: {} for t in record.trials}} if only_missing else None
    machine = bridge.start(restored, journal.FILL if only_missing else journal.IGNORE)
    machine.begin_experiment(experiment)
    exploits = record.pbt_exploits()
    try:
        for done, trial in enumerate(record.trials, start=1):
            pending = list(exploits.get(trial.original_tag, ()))
            _replay_trial(record, trial, pending, machine, bridge, experiment, account)
            if progress is not None:
                progress(done, len(record.trials), trial.trial_name)
    finally:
        report = bridge.close(REPLAY_REPORT_FILE, {"replay": account})
    return report or {}


def _warn_about_journals(experiment: ExperimentInfo, plugins: list[loading.LoadedPlugin]) -> None:
    for plugin in plugins:
        name = plugin.name
        try:
            text = experiment_files.read_text(
                experiment, journal_files.journal_name(name, journal_files.destination_of(plugin.obj))
            )
            held = len(json.loads(text).get("trials") or {}) if text else 0
        except (OSError, ValueError, AttributeError):
            continue
        if held:
            logger.warning(
                "trackbridge: plugin %r's delivery journal says its tracker (this destination) already holds %d "
                "trials of this experiment; a full replay sends them again and rewrites the journal (to add "
                "only what is missing: only_missing=True, --only-missing)",
                name,
                held,
            )


def _replay_trial(
    record: ExperimentRecord,
    trial: TrialRecord,
    exploits: list[Exploit],
    machine: TrialStateMachine,
    bridge: Bridge,
    experiment: ExperimentInfo,
    account: dict[str, Any],
) -> None:
    try:
        rows = list(record.results(trial))  # read whole first: a damaged trial is skipped, never half-sent
    except DamagedTrial as exc:
        if trial.status == NEVER_STARTED_STATUS:
            account["never_started"] += 1
        else:
            account["skipped_trials"].append({"trial": trial.trial_name, "reason": str(exc)})
            logger.warning("trackbridge: replay: trial %s skipped: %s", trial.trial_name, exc)
        return
    if not rows and trial.status == NEVER_STARTED_STATUS:
        account["never_started"] += 1
        return
    settings = bridge.settings
    fs = None if record.is_local else record.filesystem

    def info_for(config: Mapping[str, Any]) -> TrialInfo:
        return build_trial_info(
            trial_id=trial.trial_id,
            trial_name=trial.trial_name,
            config=config,
            experiment=experiment,
            local_path=trial.path if record.is_local else None,
            path=trial.path,
            experiment_tag=trial.experiment_tag,
            filesystem=fs,
            redact_extra=settings.redact_extra,
            redact_enabled=settings.redact_enabled,
        )

    config = _config_of(rows[0], trial.config) if rows else trial.config
    info = info_for(config)
    machine.start(info)
    last_step: int | None = None
    for row in rows:
        step, row_config = result_step(row), _config_of(row, config)
        exploit = _exploit_before(exploits, last_step, step, row_config, config, account)
        if exploit is not None or row_config != config:
            # PBT: the trial continues from a donor's checkpoint (PBT's log names the step; else the row's - 1)
            config, info = row_config, info_for(row_config)
            donor_step = exploit.donor_step if exploit is not None else None if step is None else step - 1
            machine.start(info, checkpoint_step=donor_step, branch=True)
        elif last_step is not None and step is not None and step <= last_step:
            machine.recover(trial.trial_id)  # a retry or restore re-running steps from its own checkpoint
            machine.start(info)
        metrics = result_metrics(row, include_auto=settings.include_auto_metrics, excludes=settings.excludes)
        timestamp = row.get("timestamp")
        machine.result(trial.trial_id, step, metrics, timestamp if isinstance(timestamp, int | float) else None)
        account["results_read"] += 1
        last_step = step if step is not None else last_step
        _replay_checkpoint(record, trial, row, machine, fs, account)
    for exploit in exploits:  # exploits no result followed (the trial ended right after continuing)
        info = info_for(exploit.config)
        machine.start(info, checkpoint_step=exploit.donor_step, branch=True)
    machine.complete(info, *_completion(record, trial))
    account["trials_replayed"] += 1


def _exploit_before(
    exploits: list[Exploit],
    last_step: int | None,
    step: int | None,
    config: Mapping[str, Any],
    previous: Mapping[str, Any],
    account: dict[str, Any],
) -> Exploit | None:
    """The exploit of PBT's log that explains this result, taken off the list (None: not after an exploit).

    Where the trial did not simply go on (its config changed, or its step is not the previous one + 1): the
    logged exploit into this result's config that continues the donor's step (else the first into this
    config); exploits logged before it have no result in Tune's records and are dropped (counted). Where it
    went on: the next logged exploit only if it kept the config, continued at this step and was logged at the
    previous result (PBT logs the last step it had seen, which can lag one behind)."""
    if not exploits or step is None:
        return None
    went_on = dict(config) == dict(previous) and (last_step is None or step == last_step + 1)
    if went_on:
        nxt = exploits[0]
        at_previous = last_step is not None and last_step in (nxt.at_step, nxt.at_step + 1)
        if nxt.config == dict(config) and nxt.donor_step + 1 == step and at_previous:
            return exploits.pop(0)
        return None
    candidates = [i for i, e in enumerate(exploits) if e.config == dict(config)]
    if not candidates:
        return None
    exact = [i for i in candidates if exploits[i].donor_step + 1 == step]
    index = (exact or candidates)[0]
    account["pbt_exploits_without_results"] += index
    del exploits[:index]
    return exploits.pop(0)


def _replay_checkpoint(
    record: ExperimentRecord,
    trial: TrialRecord,
    row: Mapping[str, Any],
    machine: TrialStateMachine,
    fs: Any,
    account: dict[str, Any],
) -> None:
    # Tune names the checkpoint reported with a result in ``checkpoint_dir_name``; Ray Train under Tune
    # reports the path of the one it persisted in ``checkpoint_path``.
    name = row.get(CHECKPOINT_DIR_KEY) or row.get(TRAIN_CHECKPOINT_KEY)
    if not isinstance(name, str) or not name:
        return
    path = record.existing_dir(trial, name)
    if path is None:
        account["checkpoints_gone"] += 1  # Tune deleted it (num_to_keep) or the folder was moved without it
        return
    machine.checkpoint(trial.trial_id, path, fs)


def _config_of(row: Mapping[str, Any], fallback: Mapping[str, Any]) -> dict[str, Any]:
    config = row.get("config")
    return dict(config) if isinstance(config, dict) else dict(fallback)


def _completion(record: ExperimentRecord, trial: TrialRecord) -> tuple[TrialStatus, str | None]:
    if trial.status == FINISHED_STATUS:
        return TrialStatus.COMPLETED, None
    if trial.status == ERROR_STATUS:
        text = record.error(trial)
        return TrialStatus.FAILED, (clean_error(text) if text else None) or "trial failed"
    return TrialStatus.UNFINISHED, None
