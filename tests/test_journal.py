"""The delivery journal (v2) on its own, without Ray: missing steps, completion statuses, PBT branches, one file
per plugin and destination. What it decides is what a restored run or ``replay --only-missing`` sends again."""

from __future__ import annotations

import json

from trackbridge.emitter import HookEmitter
from trackbridge.events import ExperimentInfo, TrialInfo, TrialStatus
from trackbridge.journal import FILL, IGNORE, LIVE, DeliveryJournal
from trackbridge.journal_files import JOURNAL_DIR, journal_name, steps_of
from trackbridge.transport import TRIAL_RESULT, HookCall

TRIAL = TrialInfo(trial_id="t1", trial_name="train_t1", experiment_name="exp", config={})


class Tracker:
    """Stands for a plugin object: only its destination matters to the journal."""

    def __init__(self, destination: str | None = "sqlite:////data/first.db#") -> None:
        self.destination = destination

    def tracker_destination(self) -> str | None:
        return self.destination


def _calls(mode: str, experiment: ExperimentInfo, script) -> list[HookCall]:
    calls: list[HookCall] = []
    emit = HookEmitter(calls.append, mode)
    emit.experiment_start(experiment)
    script(emit)
    return calls


def _run(journal: DeliveryJournal, calls: list[HookCall], fail_steps=(), fail_flush_after=None) -> list[HookCall]:
    """Deliver ``calls`` through the journal as a transport does; returns what reached the plugin."""
    admitted = []
    for call in calls:
        call = journal.admit(call)
        if call is None:
            continue
        admitted.append(call)
        if call.hook == TRIAL_RESULT and call.kwargs["step"] in fail_steps:
            journal.failed(call)
            continue
        journal.delivered(call)
        if call.hook == TRIAL_RESULT:
            if fail_flush_after is not None and call.kwargs["step"] >= fail_flush_after:
                journal.flush_failed()
            else:
                journal.flushed()
    return admitted


def _steps(calls: list[HookCall]) -> list[int]:
    return [c.kwargs["step"] for c in calls if c.hook == TRIAL_RESULT]


def _experiment(tmp_path, resumed=False) -> ExperimentInfo:
    return ExperimentInfo(name="exp", path=str(tmp_path), local_path=str(tmp_path), resumed=resumed)


def _lifecycle(steps, status=TrialStatus.COMPLETED, start_resumed=False):
    def script(emit):
        emit.trial_start(TRIAL, start_resumed, None)
        for step in steps:
            emit.trial_result(TRIAL, step, {"loss": 1.0 / step})
        if status is not None:
            emit.trial_complete(TRIAL, status, None)
        emit.experiment_end(ExperimentInfo(name="exp"))

    return script


def _file(tmp_path, tracker=None) -> dict:
    name = journal_name("mlflow", (tracker or Tracker()).destination)
    return json.loads((tmp_path / name).read_text())


def test_failed_results_and_failed_flushes_are_missing_and_come_again_below_the_floor(tmp_path):
    live = DeliveryJournal("mlflow", True, Tracker())
    # step 3's hook failed; the flush after step 7 failed (7 and 8 may not be stored); the run was never completed
    _run(live, _calls(LIVE, _experiment(tmp_path), _lifecycle(range(1, 9), status=None)), (3,), fail_flush_after=7)
    entry = _file(tmp_path)["trials"]["t1"]
    assert entry == {"step": 6, "missing": [[3, 3], [7, 8]]}
    restored = DeliveryJournal("mlflow", True, Tracker())
    sent = _run(restored, _calls(LIVE, _experiment(tmp_path, True), _lifecycle(range(1, 9), start_resumed=True)))
    assert _steps(sent) == [3, 7, 8]  # only what the tracker lacks
    assert sent[1].kwargs["last_step"] == 6  # the start names the step the plugin holds
    assert _file(tmp_path)["trials"]["t1"] == {"step": 8, "status": "completed"}  # nothing missing any more


def test_a_trial_complete_in_the_tracker_is_skipped_whole_by_fill_and_a_restarted_one_is_not(tmp_path):
    first = DeliveryJournal("mlflow", True, Tracker())
    _run(first, _calls(LIVE, _experiment(tmp_path), _lifecycle(range(1, 4), status=TrialStatus.FAILED)))
    assert _file(tmp_path)["trials"]["t1"]["status"] == "failed"
    fill = DeliveryJournal("mlflow", True, Tracker())
    assert [c.hook for c in _run(fill, _calls(FILL, _experiment(tmp_path, True), _lifecycle(range(1, 4))))] == [
        "trackbridge_experiment_start",
        "trackbridge_experiment_end",
    ]
    # Tuner.restore(resume_errored=True) runs the failed trial on; the driver is killed at step 5
    again = DeliveryJournal("mlflow", True, Tracker())
    _run(again, _calls(LIVE, _experiment(tmp_path, True), _lifecycle(range(1, 6), status=None, start_resumed=True)))
    assert "status" not in _file(tmp_path)["trials"]["t1"]  # it ran again: not complete any more
    fill = DeliveryJournal("mlflow", True, Tracker())
    sent = _run(fill, _calls(FILL, _experiment(tmp_path, True), _lifecycle(range(1, 8))))
    assert _steps(sent) == [6, 7]


def test_a_trial_that_ended_before_any_result_keeps_its_status(tmp_path):
    journal = DeliveryJournal("mlflow", True, Tracker())
    _run(journal, _calls(LIVE, _experiment(tmp_path), _lifecycle([], status=TrialStatus.FAILED)))
    assert _file(tmp_path)["trials"]["t1"] == {"step": None, "status": "failed"}


def test_fill_skips_the_pbt_branches_the_tracker_holds_and_sends_the_rest(tmp_path):
    def pbt(upto):
        def script(emit):
            emit.trial_start(TRIAL, False, None)
            for step in range(1, 9):
                emit.trial_result(TRIAL, step, {"loss": 1.0})
            emit.trial_start(TRIAL, True, 8)
            emit.trial_branch(TRIAL, 4, {"lr": 0.3})  # the exploit: on from the donor's step 4
            for step in range(5, upto + 1):
                emit.trial_result(TRIAL, step, {"loss": 2.0})
            emit.experiment_end(ExperimentInfo(name="exp"))

        return script

    live = DeliveryJournal("mlflow", True, Tracker())
    _run(live, _calls(LIVE, _experiment(tmp_path), pbt(6)))  # killed at step 6 of the new branch
    assert _file(tmp_path)["trials"]["t1"] == {"step": 6, "earlier_branches": [8]}
    fill = DeliveryJournal("mlflow", True, Tracker())
    sent = _run(fill, _calls(FILL, _experiment(tmp_path, True), pbt(8)))  # the replay sends the whole history
    assert _steps(sent) == [7, 8] and not [c for c in sent if c.hook == "trackbridge_trial_config_update"]


def test_one_journal_per_destination_and_the_old_file_only_for_a_live_restore(tmp_path):
    second = Tracker("sqlite:////data/second.db#")
    _run(DeliveryJournal("mlflow", True, second), _calls(LIVE, _experiment(tmp_path), _lifecycle(range(1, 4))))
    assert _file(tmp_path, second)["trials"]["t1"]["step"] == 3
    fresh = DeliveryJournal("mlflow", True, Tracker())  # the first destination has no record: everything goes
    assert _steps(_run(fresh, _calls(FILL, _experiment(tmp_path, True), _lifecycle(range(1, 4))))) == [1, 2, 3]

    legacy = tmp_path / JOURNAL_DIR / "mlflow.json"  # written by TrackBridge 0.2, before destinations
    for other in (tmp_path / JOURNAL_DIR).iterdir():
        other.unlink()
    legacy.write_text(json.dumps({"version": 1, "trials": {"t1": {"step": 2}}}))
    restore = DeliveryJournal("mlflow", True, Tracker())
    live_calls = _calls(LIVE, _experiment(tmp_path, True), _lifecycle(range(1, 4), start_resumed=True))
    assert _steps(_run(restore, live_calls)) == [3]
    (tmp_path / journal_name("mlflow", Tracker().destination)).unlink()
    fill = DeliveryJournal("mlflow", True, Tracker())
    assert _steps(_run(fill, _calls(FILL, _experiment(tmp_path, True), _lifecycle(range(1, 4))))) == [1, 2, 3]


def test_a_full_replay_ignores_the_journal_and_rewrites_it(tmp_path):
    _run(DeliveryJournal("mlflow", True, Tracker()), _calls(LIVE, _experiment(tmp_path), _lifecycle(range(1, 6))))
    full = DeliveryJournal("mlflow", True, Tracker())
    assert _steps(_run(full, _calls(IGNORE, _experiment(tmp_path), _lifecycle(range(1, 3))))) == [1, 2]
    assert _file(tmp_path)["trials"]["t1"]["step"] == 2


def test_damaged_ranges_are_ignored_not_expanded():
    assert steps_of([[1, 3], [5, 5]]) == {1, 2, 3, 5}
    assert steps_of([[0, 10**12], "x", [3], [2, 1]]) == set()


def test_a_killed_buffering_plugin_gets_every_step_again_that_tune_re_reports_after_a_restore(tmp_path):
    """W&B's case: durable only once a run completed; the driver killed before any trial completed. Tune's own
    state had seen step 2, but the plugin holds nothing: the new experiment's empty journal says so."""

    def killed(emit):
        emit.trial_start(TRIAL, False, None)
        for step in (1, 2, 3):
            emit.trial_result(TRIAL, step, {"loss": 1.0 / step})

    _run(DeliveryJournal("mlflow", False, Tracker()), _calls(LIVE, _experiment(tmp_path), killed))
    assert _file(tmp_path)["trials"] == {}  # written as the experiment started, before anything was durable

    def restored(emit):
        emit.trial_start(TRIAL, True, 2)  # the step Tune's experiment checkpoint carried
        for step in (1, 2, 3, 4):  # no trial checkpoint yet: Tune runs the trial again from its start
            emit.trial_result(TRIAL, step, {"loss": 1.0 / step})
        emit.trial_complete(TRIAL, TrialStatus.COMPLETED, None)

    again = _run(DeliveryJournal("mlflow", False, Tracker()), _calls(LIVE, _experiment(tmp_path, True), restored))
    assert _steps(again) == [1, 2, 3, 4]
