"""End to end: real Tune experiments deliver every trial's lifecycle to a plugin installed by entry point."""

from __future__ import annotations

import json
import os
import sys
import tempfile

import pytest
from ray import tune

from tests.step_checkpoints import first_step, step_checkpoint
from tests.thirdparty.fake_dist import make_distribution
from trackbridge import TrackBridgeCallback
from trackbridge.testing import RecordingPlugin

RESULTS = 4
CHECKPOINT_AT = 2
FAILING_X = 3
FAIL_AT = 3


def trainable(config):
    for i in range(1, RESULTS + 1):
        checkpoint = None
        if i == CHECKPOINT_AT:
            d = tempfile.mkdtemp()
            with open(os.path.join(d, "weights.txt"), "w") as f:
                f.write(str(i))
            checkpoint = tune.Checkpoint.from_directory(d)
        if config["x"] == FAILING_X and i == FAIL_AT:
            raise RuntimeError("diverged on purpose")
        tune.report({"loss": config["x"] / i, "eval": {"acc": i / 10}, "tag": "v1"}, checkpoint=checkpoint)


@pytest.fixture
def acme(tmp_path, monkeypatch):
    root = make_distribution(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    yield root
    sys.modules.pop("acme_recorder", None)


def _expected_sequence(x: int) -> list[tuple]:
    last = FAIL_AT - 1 if x == FAILING_X else RESULTS
    seq = [("trial_start", False, None)]
    for step in range(1, last + 1):
        seq.append(("result", step))
        if step == CHECKPOINT_AT:
            seq.append(("checkpoint", step))
    seq.append(("complete", "failed" if x == FAILING_X else "completed"))
    return seq


def _simplify(events: list[tuple]) -> list[tuple]:
    out = []
    for e in events:
        if e[0] == "trial_start":
            out.append(("trial_start", e[2], e[3]))
        elif e[0] in ("result", "checkpoint"):
            out.append((e[0], e[2]))
        elif e[0] == "complete":
            out.append(("complete", e[2]))
    return out


def test_tuner_delivers_exact_lifecycle_to_entry_point_plugin(ray_session, acme, workdir):
    callback = TrackBridgeCallback(plugins={"recorder": {"label": "e2e"}})
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1, 2, FAILING_X]), "opt": {"lr": 0.1, "api_token": "do-not-log"}},
        run_config=tune.RunConfig(name="core_e2e", storage_path=str(workdir / "ray"), callbacks=[callback]),
    )
    grid = tuner.fit()
    recorder = callback.get_plugin("recorder")
    assert type(recorder).__name__ == "EntryPointRecorder" and recorder.label == "e2e"

    # experiment-level calls: setup first, experiment_end last, each once
    kinds = [e[0] for e in recorder.events]
    assert kinds[0] == "setup" and kinds.count("setup") == 1
    assert recorder.events[1] == ("experiment_start", "core_e2e")
    assert recorder.events[-1] == ("experiment_end", "core_e2e")
    assert recorder.thread_names == {"trackbridge-recorder"}

    per_trial = recorder.by_trial()
    results_by_id = {r.metrics["trial_id"]: r for r in grid}
    assert set(per_trial) == set(results_by_id)
    for tid, events in per_trial.items():
        x = results_by_id[tid].config["x"]
        assert _simplify(events) == _expected_sequence(x), tid
        start = events[0]
        assert start[4] == {"x": x, "opt/lr": 0.1, "opt/api_token": "***REDACTED***"}
        for e in events:
            if e[0] == "result":
                step = e[2]
                assert e[3] == {"loss": x / step, "eval/acc": step / 10, "tag": "v1"}
        if x == FAILING_X:
            assert "diverged on purpose" in events[-1][3]
        else:
            assert events[-1][3] is None
    ckpts = [e for e in recorder.events if e[0] == "checkpoint"]
    assert all(os.path.exists(os.path.join(e[3], "weights.txt")) for e in ckpts)

    report_path = workdir / "ray" / "core_e2e" / "trackbridge_report.json"
    report = json.loads(report_path.read_text())
    [row] = report["plugins"]
    assert row["plugin"] == "recorder" and row["failed"] == 0 and row["dropped"] == 0
    assert row["delivered"] == len([e for e in recorder.events if e[0] != "flush"])


def test_tune_run_api_and_a_plugin_instance(ray_session, workdir):
    rec = RecordingPlugin()
    tune.run(
        trainable,
        config={"x": tune.grid_search([1, 2])},
        callbacks=[TrackBridgeCallback(plugins=[rec])],
        storage_path=str(workdir / "ray"),
        name="core_run_api",
        verbose=0,
    )
    per_trial = rec.by_trial()
    assert len(per_trial) == 2
    for events in per_trial.values():
        assert [e[2] for e in events if e[0] == "result"] == list(range(1, RESULTS + 1))
        assert events[-1][:3] == ("complete", events[0][1], "completed")


def retried_trainable(config):
    """Fails once at step 3 (first attempt only), then resumes from its step-2 checkpoint."""
    marker = os.path.join(config["marker_dir"], f"failed_{config['x']}")
    for i in range(first_step(), 6):
        if i == 3 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("transient failure")
        tune.report({"v": i * 10.0}, checkpoint=step_checkpoint(i) if i == 2 else None)


def test_retried_trial_continues_without_duplicate_steps(ray_session, workdir):
    rec = RecordingPlugin()
    tuner = tune.Tuner(
        retried_trainable,
        param_space={"x": 1, "marker_dir": str(workdir)},
        run_config=tune.RunConfig(
            name="core_retry",
            storage_path=str(workdir / "ray"),
            callbacks=[TrackBridgeCallback(plugins=[rec])],
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )
    tuner.fit()
    [(tid, events)] = rec.by_trial().items()
    starts = [e for e in events if e[0] == "trial_start"]
    assert [(s[2], s[3]) for s in starts] == [(False, None), (True, 2)]
    assert [e[2] for e in events if e[0] == "result"] == [1, 2, 3, 4, 5]
    assert events[-1][2] == "completed"
    assert sum(e[0] == "complete" for e in events) == 1


def interrupted_trainable(config):
    for i in range(first_step(), 7):
        if i == 4 and not os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            raise RuntimeError("driver crash stand-in")
        tune.report({"v": float(i)}, checkpoint=step_checkpoint(i))


def test_restored_experiment_resumes_trials_and_never_repeats_a_step(ray_session, workdir):
    first = RecordingPlugin()
    storage = str(workdir / "ray")
    tuner = tune.Tuner(
        interrupted_trainable,
        param_space={"marker": str(workdir / "marker")},
        run_config=tune.RunConfig(
            name="core_restore", storage_path=storage, callbacks=[TrackBridgeCallback(plugins=[first])]
        ),
    )
    tuner.fit()
    [(tid, events)] = first.by_trial().items()
    assert [e[2] for e in events if e[0] == "result"] == [1, 2, 3]
    assert events[-1][2] == "failed"

    restored = tune.Tuner.restore(
        os.path.join(storage, "core_restore"), trainable=interrupted_trainable, resume_errored=True
    )
    restored.fit()
    # the callback was unpickled from tuner.pkl: its plugin is a copy of the original (pickled before the run)
    callbacks = restored._local_tuner._run_config.callbacks
    [cb] = [c for c in callbacks if isinstance(c, TrackBridgeCallback)]
    second = cb.get_plugin("recorder")
    assert second is not first
    assert second.events[1] == ("experiment_start", "core_restore")
    [(tid2, events2)] = second.by_trial().items()
    assert tid2 == tid
    assert (events2[0][2], events2[0][3]) == (True, 3)
    assert [e[2] for e in events2 if e[0] == "result"] == [4, 5, 6]
    assert events2[-1][2] == "completed"


def pbt_trainable(config):
    step = first_step() - 1
    while step < 12:
        step += 1
        tune.report({"score": config["lr"] * step}, checkpoint=step_checkpoint(step))


class TuneResultCounter(tune.Callback):
    """What Tune itself reported, per trial: (training_iteration, score) in order."""

    def __init__(self) -> None:
        self.results: dict[str, list[tuple[int, float]]] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results.setdefault(trial.trial_id, []).append((result["training_iteration"], result["score"]))


def test_pbt_exploits_deliver_every_result_tune_reports_and_mark_the_branch(ray_session, workdir):
    from ray.tune.schedulers import PopulationBasedTraining

    rec = RecordingPlugin()
    tune_results = TuneResultCounter()
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=4,
        # none of the starting values among the choices: the first exploit of a trial always changes its lr
        hyperparam_mutations={"lr": [0.003, 0.03, 0.3]},
        quantile_fraction=0.5,
        resample_probability=1.0,
    )
    callback = TrackBridgeCallback(plugins=[rec])
    tune.Tuner(
        pbt_trainable,
        param_space={"lr": tune.grid_search([0.001, 0.01, 0.1, 1.0])},
        tune_config=tune.TuneConfig(scheduler=pbt, metric="score", mode="max", reuse_actors=True),
        run_config=tune.RunConfig(name="core_pbt", storage_path=str(workdir), callbacks=[callback, tune_results]),
    ).fit()
    per_trial = rec.by_trial()
    assert len(per_trial) == 4
    exploits = 0
    for tid, events in per_trial.items():
        delivered = [(e[2], e[3]["score"]) for e in events if e[0] == "result"]
        # every result Tune reported, once, in order: after an exploit the step goes back to the donor's + 1
        assert delivered == tune_results.results[tid]
        assert sum(e[0] == "complete" for e in events) == 1 and events[-1][0] == "complete"
        starts = [e for e in events if e[0] == "trial_start"]
        assert starts[0][2] is False and all(s[2] is True for s in starts[1:])
        for i, e in enumerate(events):
            if e[0] == "config_update":
                exploits += 1
                assert set(e[3]) <= {"lr"}
                later = [x[2] for x in events[i:] if x[0] == "result"]
                if later:  # the exploit point: the step the trial continues from (the donor's checkpoint)
                    assert later[0] == e[2] + 1, (tid, e, later[:3])
    assert exploits >= 1  # PBT exploited at least one trial into a new config
    assert callback.report["skipped_replayed_results"] == 0
    assert sum(len(r) for r in tune_results.results.values()) > 4 * 12  # steps went back: more than 48


def test_the_same_callback_in_two_fits_tracks_two_experiments(ray_session, workdir):
    rec = RecordingPlugin()
    callback = TrackBridgeCallback(plugins=[rec])
    for name in ("first", "second"):
        tune.run(trainable, config={"x": 1}, callbacks=[callback], storage_path=str(workdir), name=name, verbose=0)
    starts = [e for e in rec.events if e[0] in ("setup", "experiment_start", "experiment_end")]
    assert starts == [
        ("setup",),
        ("experiment_start", "first"),
        ("experiment_end", "first"),
        ("setup",),
        ("experiment_start", "second"),
        ("experiment_end", "second"),
    ]
    results = [e for e in rec.events if e[0] == "result"]
    assert [e[2] for e in results] == [1, 2, 3, 4, 1, 2, 3, 4]


def test_excludes_and_auto_metrics(ray_session, workdir):
    default, chosen = RecordingPlugin(name="default"), RecordingPlugin(name="chosen")
    tune.run(
        trainable,
        config={"x": 1},
        callbacks=[TrackBridgeCallback(plugins=[default])],
        storage_path=str(workdir),
        name="defaults",
        verbose=0,
    )
    tune.run(
        trainable,
        config={"x": 1},
        storage_path=str(workdir),
        name="chosen",
        verbose=0,
        callbacks=[TrackBridgeCallback(plugins=[chosen], excludes=["eval", "ta?"], include_auto_metrics=True)],
    )
    [first_default] = [e[3] for e in default.events if e[0] == "result" and e[2] == 1]
    [first_chosen] = [e[3] for e in chosen.events if e[0] == "result" and e[2] == 1]
    assert set(first_default) == {"loss", "eval/acc", "tag"}  # Tune's auto-filled fields left out
    assert "loss" in first_chosen and not {"eval/acc", "tag"} & set(first_chosen)
    assert {"time_this_iter_s", "time_total_s", "pid", "hostname", "timestamp"} <= set(first_chosen)
    assert "config/x" not in first_chosen and "training_iteration" not in first_chosen  # never metrics


class _StandInTrial:
    """Only what TrackBridgeCallback reads from a Tune trial (the test is about the bridge's state)."""

    def __init__(self, trial_id: str, config: dict) -> None:
        self.trial_id, self.config = trial_id, config
        self.experiment_dir_name, self.experiment_tag = "standin", ""

    def __str__(self) -> str:
        return f"standin_{self.trial_id}"


def test_state_saved_by_tune_carries_last_step_and_config_into_a_restored_callback():
    import pickle

    rec = RecordingPlugin()
    first = TrackBridgeCallback(plugins=[rec], flush_interval=0.0)
    tuner_pkl = pickle.dumps(first)  # Tune pickles the callback before the run
    first.setup()
    trial = _StandInTrial("t1", {"lr": 0.1, "opt": {"momentum": 0.9}})
    first.on_trial_start(0, [], trial)
    for step in (1, 2, 3):
        first.on_trial_result(0, [], trial, {"training_iteration": step, "loss": 1.0 / step})
    saved = first.get_state()
    first.close()

    restored = pickle.loads(tuner_pkl)  # as Tune restores: tuner.pkl, then set_state
    restored.set_state(saved)
    restored.setup()
    trial_again = _StandInTrial("t1", {"lr": 0.05, "opt": {"momentum": 0.9}})  # exploited just before the crash
    restored.on_trial_start(0, [], trial_again)
    for step in (3, 4):  # step 3 is replayed from the checkpoint
        restored.on_trial_result(0, [], trial_again, {"training_iteration": step, "loss": 1.0 / step})
    restored.close()
    events = restored.get_plugin("recorder").by_trial()["t1"]
    assert [(e[0], e[2]) for e in events if e[0] in ("trial_start", "config_update")] == [
        ("trial_start", True),
        ("config_update", 3),
    ]
    assert [e for e in events if e[0] == "config_update"][0][3] == {"lr": 0.05}
    assert [e[2] for e in events if e[0] == "result"] == [4]
    # no journal here (no experiment directory): the step Tune's state carried is the plugin's floor
    [row] = restored.report["plugins"]
    assert row["skipped_replays"] == 1
