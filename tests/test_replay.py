"""``trackbridge replay``: what a replay of Tune's records sends equals what the live run sent (hook by hook, and
in W&B's own run files), PBT branches and retries included; damaged folders are reported, never a crash.

Tune's JSON logger (result.json) is what a replay reads, so these tests switch Tune's auto loggers back on.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from ray import tune

from tests.step_checkpoints import first_step, step_checkpoint
from trackbridge import TrackBridgeCallback
from trackbridge.cli import main
from trackbridge.loading import construct
from trackbridge.replay import REPLAY_REPORT_FILE, replay
from trackbridge.testing.driver import RecordingPlugin
from trackbridge.tune_records import NotATuneExperiment, open_experiment

STEPS = 6
TRIAL_HOOKS = ("trial_start", "config_update", "result", "checkpoint", "complete")


def sometimes_failing(config):
    for step in range(1, STEPS + 1):
        if config["fail"] and step == 4:
            raise RuntimeError("planned failure at step 4")
        metrics = {"loss": 1.0 / step, "eval": {"acc": step * config["lr"]}}
        tune.report(metrics, checkpoint=step_checkpoint(step) if step % 2 == 0 else None)


def _per_trial(rec: RecordingPlugin, hooks=TRIAL_HOOKS) -> dict[str, list[tuple]]:
    return {tid: [e for e in events if e[0] in hooks] for tid, events in rec.by_trial().items()}


@pytest.fixture(scope="module")
def live_experiment(ray_session, tmp_path_factory):
    """One real Tune run (3 trials, one failing at step 4, checkpoints every 2 steps) tracked live by a recorder
    and by W&B offline; returns (experiment path, live recorder, W&B root of the live run, W&B settings)."""
    root = tmp_path_factory.mktemp("replay_live")
    env = pytest.MonkeyPatch()
    env.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")  # result.json: the records a replay reads
    for key, sub in (("DATA", "data"), ("CACHE", "cache"), ("CONFIG", "config"), ("ARTIFACT", "artifacts")):
        env.setenv(f"WANDB_{key}_DIR", str(root / "wandb_home" / sub))
    env.setenv("WANDB_MODE", "offline")
    env.delenv("WANDB_API_KEY", raising=False)
    env.delenv("WANDB_PROJECT", raising=False)
    env.delenv("WANDB_SERVICE", raising=False)
    wandb_options = {"mode": "offline", "project": "replayed", "upload_checkpoints": True}
    live = RecordingPlugin()
    wandb = construct("wandb", {**wandb_options, "dir": str(root / "wandb_live")})
    callback = TrackBridgeCallback(plugins=[live, wandb])
    grid = tune.Tuner(
        sometimes_failing,
        param_space={"fail": tune.grid_search([False, True, False]), "lr": 0.5, "api_token": "s3cr3t"},
        run_config=tune.RunConfig(name="replayed", storage_path=str(root / "ray"), callbacks=[callback], verbose=0),
    ).fit()
    assert grid.num_errors == 1
    yield root / "ray" / "replayed", live, root / "wandb_live", wandb_options, root
    env.undo()


def test_a_replay_sends_every_trial_exactly_as_the_live_run_did(live_experiment):
    path, live, *_ = live_experiment
    replayed = RecordingPlugin()
    report = replay(str(path), [replayed])
    expected = _per_trial(live)
    assert len(expected) == 3
    assert _per_trial(replayed) == expected  # starts, configs (redacted), results, checkpoints, statuses, errors
    failed = [events[-1] for events in expected.values() if events[-1][2] == "failed"]
    assert len(failed) == 1 and "planned failure at step 4" in failed[0][3]
    assert report["replay"]["trials_replayed"] == 3 and report["replay"]["skipped_trials"] == []
    assert json.loads((path / REPLAY_REPORT_FILE).read_text())["replay"]["results_read"] == 2 * STEPS + 3
    assert (path / "trackbridge_report.json").exists()  # the live run's report is left alone


def test_replay_into_wandb_equals_the_live_wandb_runs(live_experiment):
    from tests.wandb_reader import artifact_manifest, runs_by_id

    def _contents(artifact):  # W&B's staging copy differs per upload; the files and their digests must not
        return {name: (e["digest"], e["size"]) for name, e in artifact_manifest(artifact).items()}

    path, _, live_root, wandb_options, root = live_experiment
    replay_root = root / "wandb_replayed"
    code = main(
        [
            "replay",
            str(path),
            "--plugins",
            "wandb",
            "--no-progress",
            "--option",
            f"wandb.dir={json.dumps(str(replay_root))}",
        ]
        + [f"--option=wandb.{key}={json.dumps(value)}" for key, value in wandb_options.items()]
    )
    assert code == 0
    live_runs, replayed_runs = runs_by_id(str(live_root)), runs_by_id(str(replay_root))
    assert sorted(live_runs) == sorted(replayed_runs) and len(live_runs) == 3

    def rows(run):
        return [{k: v for k, v in row.items() if k not in ("_timestamp", "_runtime")} for row in run.history]

    for run_id, [live_run] in live_runs.items():
        [again] = replayed_runs[run_id]
        assert (again.name, again.group, again.project) == (live_run.name, live_run.group, live_run.project)
        assert again.config == live_run.config and again.config["api_token"] != "s3cr3t"
        assert rows(again) == rows(live_run) and len(rows(again)) in (3, STEPS)
        assert again.exit_code == live_run.exit_code  # finished, or failed for the failing trial
        assert [(a.name, sorted(a.aliases)) for a in again.artifacts] == [
            (a.name, sorted(a.aliases)) for a in live_run.artifacts
        ]
        assert [_contents(a) for a in again.artifacts] == [_contents(a) for a in live_run.artifacts]
        assert {k: v for k, v in again.summary.items() if not k.startswith("_")} == {
            k: v for k, v in live_run.summary.items() if not k.startswith("_")
        }
    assert sorted(run.exit_code for [run] in replayed_runs.values()) == [0, 0, 1]


def test_only_missing_adds_nothing_a_tracker_already_holds(live_experiment, tmp_path):
    path, live, *_ = live_experiment
    copy = tmp_path / "replayed"
    shutil.copytree(path, copy)
    first = RecordingPlugin("keeper")
    replay(str(copy), [first])  # a full replay: keeper's journal now names every trial, complete
    journal = json.loads((copy / "trackbridge_journal" / "keeper.json").read_text())
    assert {e["status"] for e in journal["trials"].values()} == {"completed", "failed"}
    again = RecordingPlugin("keeper")
    report = replay(str(copy), [again], only_missing=True)
    assert _per_trial(again) == {}  # nothing sent: every trial is complete in the tracker
    [row] = report["plugins"]
    assert row["skipped_replays"] == (2 * STEPS + 3) + (2 * 3 + 1)  # every result and every checkpoint

    # the journal of a plugin that got only the first steps of one trial: the rest arrives, nothing twice
    trial_id = sorted(journal["trials"])[0]
    partial = {"version": 2, "plugin": "keeper", "trials": {trial_id: {"step": 2, "missing": [[1, 1]]}}}
    (copy / "trackbridge_journal" / "keeper.json").write_text(json.dumps(partial))
    filler = RecordingPlugin("keeper")
    replay(str(copy), [filler], only_missing=True)
    sent = _per_trial(filler)
    assert sorted(sent) == sorted(journal["trials"])  # the two trials the journal does not name come in full
    steps = [e[2] for e in sent[trial_id] if e[0] == "result"]
    recorded = [e[2] for e in _per_trial(live)[trial_id] if e[0] == "result"]
    assert steps == [1] + [step for step in recorded if step > 2]  # the missing step 1, then after the floor
    assert sent[trial_id][0][:4] == ("trial_start", trial_id, True, 2)  # continues its run from step 2


def test_damaged_trials_are_reported_and_skipped_and_the_others_replayed(live_experiment, tmp_path):
    path, live, *_ = live_experiment
    copy = tmp_path / "damaged"
    shutil.copytree(path, copy)
    record = open_experiment(str(copy))
    broken, gone, torn = record.trials
    lines = (Path(broken.path) / "result.json").read_text().splitlines()
    lines[1] = lines[1][:20]  # a line in the middle cut short
    (Path(broken.path) / "result.json").write_text("\n".join(lines) + "\n")
    os.remove(Path(gone.path) / "result.json")
    with open(Path(torn.path) / "result.json", "a") as f:
        f.write('{"loss": 0.1, "training_iter')  # a write cut off by a killed driver: skipped, not damage
    rec = RecordingPlugin()
    report = replay(str(copy), [rec])
    skipped = {s["trial"]: s["reason"] for s in report["replay"]["skipped_trials"]}
    assert set(skipped) == {broken.trial_name, gone.trial_name}
    assert "line 2 is not JSON" in skipped[broken.trial_name] and "no result.json" in skipped[gone.trial_name]
    assert list(_per_trial(rec)) == [torn.trial_id]  # skipped whole: never half a trial
    hooks = ("result", "complete")  # (the checkpoints lie in the copy)
    assert _per_trial(rec, hooks)[torn.trial_id] == _per_trial(live, hooks)[torn.trial_id]
    assert report["replay"]["trials_replayed"] == 1


def test_a_folder_that_is_not_a_tune_experiment_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotATuneExperiment, match="not a Tune experiment folder"):
        replay(str(tmp_path), [RecordingPlugin()])
    assert main(["replay", str(tmp_path / "missing"), "--plugins", "mlflow"]) == 2
    assert "does not exist or is empty" in capsys.readouterr().err
    assert main(["replay", str(tmp_path), "--plugins", "mlflow", "--option", "mlfow.x=1"]) == 2
    assert "plugin 'mlfow' is not in --plugins" in capsys.readouterr().err


# --------------------------------------------------------------------------- PBT branches and retries
def pbt_trainable(config):
    step = first_step() - 1
    while step < 12:
        step += 1
        if config.get("crash_at") == step and not os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            raise RuntimeError("lost a worker")
        # checkpoints on even steps: the retry after the crash at step 4 re-runs step 3 (a replay)
        tune.report({"score": config["lr"] * step}, checkpoint=step_checkpoint(step) if step % 2 == 0 else None)


def test_pbt_exploits_and_retries_replay_as_they_were_delivered_live(ray_session, workdir, monkeypatch):
    from ray.tune.schedulers import PopulationBasedTraining

    monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
    live = RecordingPlugin()
    callback = TrackBridgeCallback(plugins=[live])
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=4,
        hyperparam_mutations={"lr": [0.003, 0.03, 0.3]},
        quantile_fraction=0.5,
        resample_probability=1.0,
    )
    tune.Tuner(
        pbt_trainable,
        param_space={
            "lr": tune.grid_search([0.001, 0.01, 0.1, 1.0]),
            "crash_at": 4,
            "marker": str(workdir / "crashed"),
        },
        tune_config=tune.TuneConfig(scheduler=pbt, metric="score", mode="max", reuse_actors=True),
        run_config=tune.RunConfig(
            name="pbt_replay",
            storage_path=str(workdir),
            callbacks=[callback],
            failure_config=tune.FailureConfig(max_failures=1),
            verbose=0,
        ),
    ).fit()
    replayed = RecordingPlugin()
    report = replay(str(workdir / "pbt_replay"), [replayed])
    # Pauses and unpauses are not in Tune's records: compare everything but the (re)starts.
    hooks = ("config_update", "result", "complete")
    live_events, replayed_events = _per_trial(live, hooks), _per_trial(replayed, hooks)
    assert sorted(replayed_events) == sorted(live_events)
    complete = total_rows = total_delivered = 0
    for tid, events in replayed_events.items():
        rows = _result_rows(workdir / "pbt_replay", tid)
        # every result Tune recorded (a retry's re-run repeats one: skipped, as live)
        delivered = [(e[2], e[3]["score"]) for e in events if e[0] == "result"]
        assert set(delivered) == {(r["training_iteration"], r["score"]) for r in rows}
        total_rows += len(rows)
        total_delivered += len(delivered)
        # nothing the live run did not send, in its order (a branch's changes are relative to the config before
        # it, which differs where Tune lost a branch's results: compared by step)
        assert _is_subsequence(_branch_steps(events), _branch_steps(live_events[tid]))
        complete += events == live_events[tid]  # else Tune's result.json lost results of a restart
    assert complete >= 1  # trials whose records are complete replay exactly as live
    exploits = [e for events in live_events.values() for e in events if e[0] == "config_update"]
    assert len(exploits) >= 2
    # no checkpoint the live run did not send, also not the one Tune saved with the result on which PBT paused
    # a trial to exploit it (Tune calls no on_checkpoint for it; the live callback sends it before the trial's
    # next event); the live run has more where Tune's result.json lost results
    live_checkpoints = {e for events in _per_trial(live).values() for e in events if e[0] == "checkpoint"}
    replayed_checkpoints = {e for events in _per_trial(replayed).values() for e in events if e[0] == "checkpoint"}
    assert replayed_checkpoints <= live_checkpoints
    assert len(replayed_checkpoints) >= 4 * 2  # at least steps 2 and 4 of every trial (Tune may lose later ones)
    # the retried trial's re-run step, skipped as live
    assert report["skipped_replayed_results"] == callback.report["skipped_replayed_results"] >= 1
    assert total_delivered + report["skipped_replayed_results"] == total_rows


def _result_rows(experiment: Path, trial_id: str) -> list[dict]:
    [trial_dir] = [p for p in experiment.iterdir() if p.is_dir() and f"_{trial_id}_" in p.name]
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]


def _branch_steps(events: list[tuple]) -> list[tuple]:
    return [e[:3] if e[0] == "config_update" else e for e in events]


def _is_subsequence(part: list, whole: list) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


def test_a_full_replay_into_a_second_mlflow_store_leaves_the_first_stores_journal_alone(live_experiment, tmp_path):
    from mlflow import MlflowClient

    path, live, *_ = live_experiment
    copy = tmp_path / "two_stores"
    shutil.copytree(path, copy)
    first, second, third = (f"sqlite:///{tmp_path / name}" for name in ("first.db", "second.db", "third.db"))
    replay(str(copy), {"mlflow": {"tracking_uri": first}})
    [first_journal] = list((copy / "trackbridge_journal").glob("mlflow-*.json"))
    kept = json.loads(first_journal.read_text())
    replay(str(copy), {"mlflow": {"tracking_uri": second}})  # everything again, into a scratch store
    assert len(list((copy / "trackbridge_journal").glob("mlflow-*.json"))) == 2  # one per destination
    assert json.loads(first_journal.read_text())["trials"] == kept["trials"]  # the first store's record stands
    # --only-missing into the first store: its journal says it holds everything
    again = replay(str(copy), {"mlflow": {"tracking_uri": first}}, only_missing=True)
    assert again["plugins"][0]["delivered"] <= 3  # setup and the experiment's start and end: no trial event
    # --only-missing into a third store: no record there, so every trial arrives, each step once
    report = replay(str(copy), {"mlflow": {"tracking_uri": third}}, only_missing=True)
    [row] = report["plugins"]
    assert row["skipped_replays"] == 0 and row["failed"] == 0
    client = MlflowClient(tracking_uri=third)
    runs = client.search_runs([client.get_experiment_by_name("two_stores").experiment_id])  # the folder's name
    assert len(runs) == 3
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert steps == list(range(1, len(steps) + 1)) and len(steps) in (3, STEPS)


def test_a_replay_into_tensorboard_writes_every_step_and_no_live_logger_warning(live_experiment, tmp_path, caplog):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path, live, *_ = live_experiment
    copy = tmp_path / "tb"
    shutil.copytree(path, copy)
    with caplog.at_level("WARNING", logger="trackbridge"):
        report = replay(str(copy), ["tensorboard"])
    assert report["plugins"][0]["failed"] == 0
    assert "TBXLoggerCallback" not in caplog.text  # a replay runs no Tune logger: nothing to warn about
    for trial in open_experiment(str(copy)).trials:
        expected = [e[2] for e in _per_trial(live)[trial.trial_id] if e[0] == "result"]
        accumulator = EventAccumulator(trial.path, size_guidance={"scalars": 0})
        accumulator.Reload()
        assert [e.step for e in accumulator.Scalars("loss")] == expected  # in the trial directory, as live
