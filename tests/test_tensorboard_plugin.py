"""The TensorBoard plugin: real Tune runs, read back with TensorBoard's own readers.

What a user checks in TensorBoard is checked here with the code TensorBoard runs: ``EventAccumulator`` for a
run's scalars, histograms and texts, ``EventMultiplexer`` for the runs ``tensorboard --logdir <experiment
dir>`` shows, and the HParams plugin's own handlers for the HParams dashboard (sessions, hparams, status,
metric values).
"""

from __future__ import annotations

import glob
import logging
import os
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from ray import tune
from tensorboard import context as tb_context
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, hparams_plugin, list_session_groups

from trackbridge import ExperimentInfo, PluginError, TrackBridgeCallback, TrialInfo, TrialStatus
from trackbridge.testing.driver import drive, scripted_trial
from trackbridge_tensorboard import SuppressTuneTBXLogger, TensorBoardPlugin

EVERYTHING = {ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0, ea.COMPRESSED_HISTOGRAMS: 0}


# --------------------------------------------------------------------------------------------- reader
def run_dirs(root: Path | str) -> dict[str, str]:
    """The runs ``tensorboard --logdir root`` shows: run name -> directory."""
    mux = pem.EventMultiplexer()
    mux.AddRunsFromDirectory(str(root))
    return {name: os.path.join(str(root), name) for name in mux.Runs()}


def load_run(path: str | Path) -> ea.EventAccumulator:
    acc = ea.EventAccumulator(str(path), size_guidance=EVERYTHING)
    acc.Reload()
    return acc


def scalar_series(acc: ea.EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def texts(acc: ea.EventAccumulator, tag: str) -> list[tuple[int, str]]:
    return [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(tag)]


def hparams_sessions(root: Path | str) -> dict[str, api_pb2.SessionGroup]:
    """The HParams dashboard's table, computed by TensorBoard's HParams plugin: run name -> session group."""
    mux = pem.EventMultiplexer()
    mux.AddRunsFromDirectory(str(root))
    mux.Reload()
    tb = base_plugin.TBContext(
        logdir=str(root),
        data_provider=data_provider.MultiplexerDataProvider(mux, str(root)),
        multiplexer=mux,
        plugin_name_to_instance={},
    )
    plugin = hparams_plugin.HParamsPlugin(tb)
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0,
        slice_size=1000,
        allowed_statuses=[
            api_pb2.STATUS_UNKNOWN,
            api_pb2.STATUS_SUCCESS,
            api_pb2.STATUS_FAILURE,
            api_pb2.STATUS_RUNNING,
        ],
        aggregation_type=api_pb2.AGGREGATION_AVG,
        include_metrics=True,
    )
    response = list_session_groups.Handler(tb_context.RequestContext(), plugin._context, "", request).run()
    return {group.sessions[0].name: group for group in response.session_groups}


def hparam_dict(group: api_pb2.SessionGroup) -> dict:
    out = {}
    for key, value in group.hparams.items():
        out[key] = getattr(value, value.WhichOneof("kind"))
    return out


def metric_dict(group: api_pb2.SessionGroup) -> dict[str, tuple[int, float]]:
    return {m.name.tag: (m.training_step, m.value) for m in group.metric_values}


def all_tags(root: Path | str) -> set[str]:
    tags: set[str] = set()
    for path in run_dirs(root).values():
        t = load_run(path).Tags()
        tags.update(t["scalars"], t["tensors"], t["histograms"])
    return tags


def tuner(trainable, workdir: Path, name: str, param_space: dict, plugin_options=None, **run_config):
    callback = TrackBridgeCallback(plugins={"tensorboard": dict(plugin_options or {})}, flush_interval=0.1)
    extra_callbacks = run_config.pop("callbacks", [])
    return tune.Tuner(
        trainable,
        param_space=param_space,
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(workdir / "ray"),
            callbacks=[callback, *extra_callbacks],
            verbose=0,
            **run_config,
        ),
    ), callback


# --------------------------------------------------------------------------------------------- done means
STEPS = 200
LRS = [0.1, 0.01, 0.001, 0.0001]


def steady_trainable(config):
    for i in range(1, STEPS + 1):
        tune.report(
            {
                "loss": config["lr"] / i,
                "eval": {"acc": i / STEPS},
                "weights": [config["lr"] * i, float(i), -float(i)],
                "phase": "warmup" if i <= 10 else "train",
                "note": None,
            }
        )


def test_four_trials_of_200_results_give_four_runs_of_exactly_200_steps(ray_session, workdir, caplog):
    caplog.set_level(logging.WARNING, logger="trackbridge")
    t, callback = tuner(
        steady_trainable,
        workdir,
        "done",
        {"lr": tune.grid_search(LRS), "opt": {"name": "sgd", "betas": [0.9, 0.99]}, "use_bn": True},
    )
    started = time.monotonic()
    grid = t.fit()
    elapsed = time.monotonic() - started
    assert not grid.errors
    experiment_dir = workdir / "ray" / "done"

    runs = run_dirs(experiment_dir)
    trial_dirs = {os.path.basename(r.path) for r in grid}
    assert set(runs) == trial_dirs and len(runs) == 4  # one run per trial, named like the trial directory

    finals = {}
    for name, path in runs.items():
        acc = load_run(path)
        tags = acc.Tags()
        assert sorted(tags["scalars"]) == ["eval/acc", "loss"]
        for tag in ("loss", "eval/acc"):
            assert [s for s, _ in scalar_series(acc, tag)] == list(range(1, STEPS + 1)), (name, tag)
        assert tags["histograms"] == ["weights"]
        assert [e.step for e in acc.Histograms("weights")] == list(range(1, STEPS + 1))
        assert acc.Histograms("weights")[-1].histogram_value.num == 3
        assert sorted(tags["tensors"]) == ["phase", "trial_status"]
        phases = texts(acc, "phase")
        assert len(phases) == STEPS and phases[0] == (1, "warmup") and phases[-1] == (STEPS, "train")
        assert texts(acc, "trial_status") == [(STEPS, "completed")]
        finals[name] = scalar_series(acc, "loss")[-1][1]

    # the HParams dashboard: one session per trial with its config, status and final metric values
    sessions = hparams_sessions(experiment_dir)
    assert set(sessions) == set(runs)
    seen_lrs = []
    for name, group in sessions.items():
        hp = hparam_dict(group)
        seen_lrs.append(hp["lr"])
        assert hp == {
            "lr": hp["lr"],
            "opt/name": "sgd",
            "opt/betas": "[0.9, 0.99]",
            "use_bn": True,
            "trial_status": "completed",
        }
        assert group.sessions[0].status == api_pb2.STATUS_SUCCESS
        metrics = metric_dict(group)
        assert set(metrics) == {"loss", "eval/acc"}
        assert metrics["eval/acc"] == (STEPS, 1.0)
        assert metrics["loss"][0] == STEPS and metrics["loss"][1] == pytest.approx(hp["lr"] / STEPS, rel=1e-6)
        assert metrics["loss"][1] == finals[name]
    assert sorted(seen_lrs) == pytest.approx(sorted(LRS))

    # None is skipped, with one warning for all 800 results
    plugin = callback.get_plugin("tensorboard")
    assert plugin.skipped == {"skip:note": 4 * STEPS}
    assert len([r for r in caplog.records if "'note'" in r.getMessage()]) == 1
    assert callback.report["plugins"][0]["failed"] == 0
    print(f"\n4 trials x {STEPS} results: fit() took {elapsed:.1f}s")


# --------------------------------------------------------------------------------------------- failed / unfinished
def fail_or_linger(config):
    if config["kind"] == "fails":
        tune.report({"loss": 1.0})
        open(config["marker"], "w").close()
        raise ValueError("diverged on purpose")
    for i in range(1, 10_000):
        time.sleep(0.02)
        tune.report({"loss": 1.0 / i})


class StopAllOnceFailed(tune.Stopper, tune.Callback):
    """Ends the experiment (the lingering trial is still running) once Tune has processed the failing
    trial's error (not merely once it raised: Tune may not have handled the error yet)."""

    def __init__(self, marker: str) -> None:
        self.marker, self.results, self.errored = marker, 0, False

    def on_trial_error(self, iteration, trials, trial, **info):
        self.errored = True

    def __call__(self, trial_id, result):
        self.results += 1
        return False

    def stop_all(self):
        return self.errored and self.results >= 10


def test_failed_and_unfinished_trials_are_marked(ray_session, workdir):
    marker = str(workdir / "failed.marker")
    stopper = StopAllOnceFailed(marker)
    t, _ = tuner(
        fail_or_linger,
        workdir,
        "marks",
        {"kind": tune.grid_search(["fails", "lingers"]), "marker": marker},
        stop=stopper,
        callbacks=[stopper],
    )
    grid = t.fit()
    experiment_dir = workdir / "ray" / "marks"
    by_kind = {r.config["kind"]: os.path.basename(r.path) for r in grid}
    sessions = hparams_sessions(experiment_dir)

    failed = sessions[by_kind["fails"]]
    assert failed.sessions[0].status == api_pb2.STATUS_FAILURE
    assert hparam_dict(failed)["trial_status"] == "failed"
    acc = load_run(experiment_dir / by_kind["fails"])
    assert scalar_series(acc, "loss") == [(1, 1.0)]
    [(step, status_text)] = texts(acc, "trial_status")
    assert step == 1 and "failed" in status_text and "diverged on purpose" in status_text

    unfinished = sessions[by_kind["lingers"]]
    assert unfinished.sessions[0].status == api_pb2.STATUS_UNKNOWN
    assert hparam_dict(unfinished)["trial_status"] == "unfinished"
    acc = load_run(experiment_dir / by_kind["lingers"])
    steps = [s for s, _ in scalar_series(acc, "loss")]
    assert len(steps) >= 5 and steps == list(range(1, len(steps) + 1))
    assert texts(acc, "trial_status") == [(steps[-1], "unfinished")]


# --------------------------------------------------------------------------------------------- restore
RESTORE_STEPS = 8


def interrupted_trainable(config):
    """Checkpoints at steps 3 and 6; x=1 raises at step 5 on the first attempt only (marker file)."""
    start = 1
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            start = int(Path(d, "step").read_text()) + 1
    marker = Path(config["marker_dir"], f"failed_{config['x']}")
    for i in range(start, RESTORE_STEPS + 1):
        if config["x"] == 1 and i == 5 and not marker.exists():
            marker.touch()
            raise RuntimeError("crash stand-in")
        ckpt = None
        if i % 3 == 0:
            d = tempfile.mkdtemp()
            Path(d, "step").write_text(str(i))
            ckpt = tune.Checkpoint.from_directory(d)
        tune.report({"loss": config["x"] * 100.0 + i}, checkpoint=ckpt)


def test_restore_continues_each_run_with_no_step_twice(ray_session, workdir):
    t, _ = tuner(
        interrupted_trainable,
        workdir,
        "restore",
        {"x": tune.grid_search([1, 2]), "marker_dir": str(workdir)},
        failure_config=tune.FailureConfig(max_failures=0),
    )
    first = t.fit()
    assert len(first.errors) == 1
    experiment_dir = workdir / "ray" / "restore"
    crashed = next(os.path.basename(r.path) for r in first if r.config["x"] == 1)
    assert hparams_sessions(experiment_dir)[crashed].sessions[0].status == api_pb2.STATUS_FAILURE

    restored = tune.Tuner.restore(str(experiment_dir), trainable=interrupted_trainable, resume_errored=True)
    second = restored.fit()
    assert not second.errors

    runs = run_dirs(experiment_dir)
    assert len(runs) == 2  # the resumed trial continued its run, it did not start a second one
    for name, path in runs.items():
        x = 1 if name == crashed else 2
        series = scalar_series(load_run(path), "loss")
        assert series == [(i, x * 100.0 + i) for i in range(1, RESTORE_STEPS + 1)], name

    # the crashed trial: both ends are in its history, and the HParams session shows how it finally ended
    acc = load_run(runs[crashed])
    statuses = texts(acc, "trial_status")
    assert [s for s, _ in statuses] == [4, RESTORE_STEPS]
    assert "crash stand-in" in statuses[0][1] and statuses[1][1] == "completed"
    group = hparams_sessions(experiment_dir)[crashed]
    assert group.sessions[0].status == api_pb2.STATUS_SUCCESS
    assert hparam_dict(group)["trial_status"] == "completed"
    assert metric_dict(group)["loss"] == (RESTORE_STEPS, 100.0 + RESTORE_STEPS)
    assert len(glob.glob(os.path.join(runs[crashed], "*.trackbridge-hparams"))) == 1


def test_purge_step_hides_what_a_crashed_attempt_wrote_past_the_restored_step(tmp_path):
    """The core's saved last_step can lag behind what was written before a driver crash; the resumed
    writer's purge_step (last_step + 1) makes TensorBoard drop the orphaned steps: each step shows once."""
    trial = TrialInfo(trial_id="t1", trial_name="t1", experiment_name="e", config={"lr": 0.1})
    experiment = ExperimentInfo(name="e")
    plugin = TensorBoardPlugin(logdir=str(tmp_path))
    copy = pickle.loads(pickle.dumps(plugin))  # what Tuner.restore unpickles from tuner.pkl

    plugin.trackbridge_setup()
    plugin.trackbridge_experiment_start(experiment)
    plugin.trackbridge_trial_start(trial, resumed=False, last_step=None)
    for step in range(1, 11):
        plugin.trackbridge_trial_result(trial, step, {"loss": float(step)}, time.time())
    plugin.trackbridge_experiment_end(experiment)  # the driver died: no trial_complete

    copy.trackbridge_setup()
    copy.trackbridge_experiment_start(experiment)
    copy.trackbridge_trial_start(trial, resumed=True, last_step=6)
    for step in range(7, 13):
        copy.trackbridge_trial_result(trial, step, {"loss": 100.0 + step}, time.time())
    copy.trackbridge_flush()
    copy.trackbridge_trial_complete(trial, TrialStatus.COMPLETED, None)
    copy.trackbridge_experiment_end(experiment)

    series = scalar_series(load_run(tmp_path / "t1"), "loss")
    assert series == [(s, float(s)) for s in range(1, 7)] + [(s, 100.0 + s) for s in range(7, 13)]


def test_steps_that_go_back_after_an_exploit_are_written_again_and_the_exploit_is_marked(tmp_path):
    """After a PBT exploit from a donor checkpoint at step 2 the trial's steps 3, 4 come again: written at their
    steps (TensorBoard's Python reader keeps both in file order), and the exploit point at step 2 is the scalar
    trackbridge/exploit = 1 plus a text naming the changed keys; an exploit that kept the config says so."""
    trial = TrialInfo(trial_id="x1", trial_name="x1", experiment_name="e", config={"lr": 0.1})
    experiment = ExperimentInfo(name="e")
    plugin = TensorBoardPlugin(logdir=str(tmp_path), prefix="tune")
    plugin.trackbridge_setup()
    plugin.trackbridge_experiment_start(experiment)
    plugin.trackbridge_trial_start(trial, resumed=False, last_step=None)
    for step in (1, 2, 3, 4):
        plugin.trackbridge_trial_result(trial, step, {"loss": float(step)}, time.time())
    exploited = TrialInfo(trial_id="x1", trial_name="x1", experiment_name="e", config={"lr": 0.5})
    plugin.trackbridge_trial_start(exploited, resumed=True, last_step=4)
    plugin.trackbridge_trial_config_update(exploited, 2, {"lr": 0.5})
    for step in (3, 4, 5):
        plugin.trackbridge_trial_result(exploited, step, {"loss": 10.0 * step}, time.time())
    plugin.trackbridge_trial_start(exploited, resumed=True, last_step=5)
    plugin.trackbridge_trial_config_update(exploited, 5, {})
    plugin.trackbridge_trial_complete(exploited, TrialStatus.COMPLETED, None)
    plugin.trackbridge_experiment_end(experiment)

    acc = load_run(tmp_path / "x1")
    assert scalar_series(acc, "tune/loss") == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (3, 30.0), (4, 40.0), (5, 50.0)]
    assert scalar_series(acc, "trackbridge/exploit") == [(2, 1.0), (5, 1.0)]  # not under the metrics' prefix
    [(at, changed), (again, unchanged)] = texts(acc, "trackbridge/exploit_config")
    assert at == 2 and changed.startswith("continues from step 2") and "`lr`" in changed and "0.5" in changed
    assert again == 5 and unchanged == "continues from step 5; config unchanged"
    assert texts(acc, "trial_status") == [(5, "completed")]


# --------------------------------------------------------------------------------------------- live flush
def waiting_trainable(config):
    for i in range(1, 4):
        tune.report({"loss": float(i)})
    deadline = time.time() + 30
    while not os.path.exists(config["seen"]) and time.time() < deadline:
        time.sleep(0.05)
    tune.report({"loss": 4.0})


class LookWhileRunning(tune.Callback):
    """At step 3, read the trial's run as a running TensorBoard would, while the trial is still going."""

    def __init__(self, seen: str) -> None:
        self.seen, self.steps, self.latency = seen, None, None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result["training_iteration"] != 3:
            return
        started = time.monotonic()
        while time.monotonic() - started < 15:
            try:
                self.steps = [s for s, _ in scalar_series(load_run(trial.path), "loss")]
            except KeyError:
                self.steps = []
            if self.steps == [1, 2, 3]:
                break
            time.sleep(0.05)
        self.latency = time.monotonic() - started
        open(self.seen, "w").close()


def test_a_running_tensorboard_sees_results_while_the_trial_runs(ray_session, workdir):
    look = LookWhileRunning(str(workdir / "seen"))
    t, _ = tuner(waiting_trainable, workdir, "live", {"seen": look.seen}, callbacks=[look])
    t.fit()
    assert look.steps == [1, 2, 3]
    assert look.latency < 5
    print(f"\nstep 3 visible on disk {look.latency:.2f}s after Tune received it")


# --------------------------------------------------------------------------------------------- Tune's own logger
def short_trainable(config):
    for i in range(1, 4):
        tune.report({"loss": 1.0 / i})


def test_tunes_own_tensorboard_logger_is_warned_about_and_can_be_suppressed(ray_session, workdir, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="trackbridge")
    # Tune reads the variable when fit() builds its callbacks, so unsetting it here turns its loggers on.
    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)

    t, _ = tuner(short_trainable, workdir, "doubled", {})
    t.fit()
    tags = all_tags(workdir / "ray" / "doubled")
    assert {"loss", "ray/tune/loss"} <= tags  # the same values twice: what the warning is about
    assert [r for r in caplog.records if "SuppressTuneTBXLogger" in r.getMessage()]

    caplog.clear()
    callback = TrackBridgeCallback(plugins={"tensorboard": {}}, flush_interval=0.1)
    companions = callback.get_plugin("tensorboard").companion_callbacks()
    assert [type(c) for c in companions] == [SuppressTuneTBXLogger]
    t = tune.Tuner(
        short_trainable,
        param_space={},
        run_config=tune.RunConfig(
            name="single", storage_path=str(workdir / "ray"), callbacks=[callback, *companions], verbose=0
        ),
    )
    grid = t.fit()
    experiment_dir = workdir / "ray" / "single"
    assert all_tags(experiment_dir) == {"loss", "trial_status"}
    [run] = run_dirs(experiment_dir).values()
    assert [s for s, _ in scalar_series(load_run(run), "loss")] == [1, 2, 3]
    # Tune's CSV and JSON loggers stay on: its own result files (and ResultGrid's dataframes) still work
    assert os.path.exists(os.path.join(run, "progress.csv")) and os.path.exists(os.path.join(run, "result.json"))
    assert len(grid[0].metrics_dataframe) == 3
    assert not [r for r in caplog.records if "SuppressTuneTBXLogger" in r.getMessage()]


# --------------------------------------------------------------------------------------------- options and values
def test_prefix_logdir_and_value_kinds(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="trackbridge")
    plugin = TensorBoardPlugin(logdir=str(tmp_path / "tb"), prefix="tune/")
    results = [
        {"loss": np.float32(0.5), "flag": True, "hist": np.arange(4), "nan_hist": [float("nan")], "mixed": 1.0},
        {"loss": np.float64(0.25), "flag": False, "hist": np.array([]), "nan_hist": [1.0], "mixed": "text now"},
    ]
    stats = drive(plugin, [scripted_trial("a", results=results, config={"lr": 0.1, "fn": None})])
    assert stats.failed == 0
    [(name, path)] = run_dirs(tmp_path / "tb").items()
    assert name == "scripted_a"  # <logdir>/<trial_name>
    acc = load_run(path)
    assert sorted(acc.Tags()["scalars"]) == ["tune/flag", "tune/loss", "tune/mixed"]
    assert scalar_series(acc, "tune/flag") == [(1, 1.0), (2, 0.0)]
    assert [e.step for e in acc.Histograms("tune/hist")] == [1]  # the empty array is skipped
    assert [e.step for e in acc.Histograms("tune/nan_hist")] == [2]  # no finite values at step 1
    assert scalar_series(acc, "tune/mixed") == [(1, 1.0)]  # a tag keeps its first kind
    assert set(plugin.skipped) == {"skip:hist", "histogram:nan_hist", "kind:mixed"}
    assert hparam_dict(hparams_sessions(tmp_path / "tb")["scripted_a"]) == {"lr": 0.1, "trial_status": "completed"}


def test_remote_storage_writes_to_tunes_local_staging_directory(workdir):
    """A trial whose storage is remote (``TrialInfo.filesystem`` set; Tune strips the scheme from the path,
    s3://bucket/exp/trial -> bucket/exp/trial) is written to its driver staging directory, which Tune syncs."""
    import pyarrow.fs as pafs
    from fsspec.implementations.memory import MemoryFileSystem

    staging = workdir / "staging" / "trial_0"
    trial = scripted_trial("r", results=[{"loss": 1.0}])
    remote = pafs.PyFileSystem(pafs.FSSpecHandler(MemoryFileSystem()))
    info = TrialInfo(
        trial_id="r",
        trial_name="trial_0",
        experiment_name="exp",
        path="bucket/exp/trial_0",
        local_path=str(staging),
        filesystem=remote,
    )
    trial.info = info
    assert drive(TensorBoardPlugin(), [trial]).failed == 0
    assert scalar_series(load_run(staging), "loss") == [(1, 1.0)]
    assert not os.path.exists("bucket")


def test_bad_options_fail_at_construction_and_the_plugin_pickles():
    with pytest.raises(PluginError, match="unknown option 'log_dir' for plugin 'tensorboard'; did you mean 'logdir'"):
        TrackBridgeCallback(plugins={"tensorboard": {"log_dir": "x"}})
    with pytest.raises(PluginError, match="option 'prefix' of plugin 'tensorboard' must be str"):
        TrackBridgeCallback(plugins={"tensorboard": {"prefix": 3}})
    with pytest.raises(PluginError, match="option 'flush_secs' of plugin 'tensorboard': must be positive"):
        TrackBridgeCallback(plugins={"tensorboard": {"flush_secs": 0}})
    with pytest.raises(PluginError, match="option 'hparams' of plugin 'tensorboard' must be bool"):
        TrackBridgeCallback(plugins={"tensorboard": {"hparams": "yes"}})
    with pytest.raises(PluginError, match="local directory"):
        TrackBridgeCallback(plugins={"tensorboard": {"logdir": "s3://bucket/tb"}})
    plugin = TensorBoardPlugin(logdir="relative/tb", flush_secs=1)
    assert os.path.isabs(plugin.options.logdir)
    assert plugin.options.flush_secs == 1.0
    assert TensorBoardPlugin(prefix=None).options.tag("loss") == "loss"
    assert TensorBoardPlugin(prefix="/tune/").options.tag("loss") == "tune/loss"
    assert pickle.loads(pickle.dumps(plugin)).options == plugin.options
    pickle.dumps(SuppressTuneTBXLogger())


def test_tool_hints_companion_callbacks_and_view_command(tmp_path):
    # Writing into Tune's trial directories: Tune's own TensorBoard logger must be kept out of them.
    default = TensorBoardPlugin()
    assert [type(c) for c in default.companion_callbacks()] == [SuppressTuneTBXLogger]
    assert default.view_command(None) is None
    local = ExperimentInfo(name="exp", path=str(tmp_path / "ray" / "exp"), local_path=str(tmp_path / "staging"))
    assert default.view_command(local) == f"tensorboard --logdir {tmp_path / 'ray' / 'exp'}"
    remote = ExperimentInfo(name="exp", path="bucket/exp", local_path=str(tmp_path / "staging"), filesystem=object())
    assert default.view_command(remote) == f"tensorboard --logdir {tmp_path / 'staging'}"
    # Its own logdir: no collision with Tune's logger, and that directory is the one to view.
    own = TensorBoardPlugin(logdir=str(tmp_path / "tb"))
    assert own.companion_callbacks() == []
    assert own.view_command(local) == f"tensorboard --logdir {tmp_path / 'tb'}"


# --------------------------------------------------------------------------------------------- values logged inside the trial
def test_in_trial_values_are_one_event_per_call_at_their_own_global_step_and_files_are_skipped(tmp_path):
    from trackbridge import LoggedFile
    from trackbridge.testing import ScriptedLog

    upload = tmp_path / "notes.txt"
    upload.write_text("TensorBoard stores no files")
    files = [LoggedFile(path=str(upload), name="notes.txt"), LoggedFile(path=str(upload), name="again.txt")]
    logs = [
        ScriptedLog(0, 10, {"batch/loss": 0.5, "note": "hello", "hist": [1.0, 2.0, 3.0]}),
        ScriptedLog(0, 11, {"batch/loss": 0.25, "thing": object()}),
        ScriptedLog(1, 12, {"batch/loss": 0.125}, files),
        ScriptedLog(2, 5, {"batch/loss": 0.75, "thing": object(), "note": 1.0}),
    ]
    plugin = TensorBoardPlugin(logdir=str(tmp_path / "tb"))
    stats = drive(plugin, [scripted_trial("t", results=[{"loss": 1.0}, {"loss": 0.5}], logs=logs)])
    assert stats.failed == 0 and stats.dropped == 0
    acc = load_run(run_dirs(tmp_path / "tb")["scripted_t"])
    assert scalar_series(acc, "batch/loss") == [(10, 0.5), (11, 0.25), (12, 0.125), (5, 0.75)]
    assert scalar_series(acc, "loss") == [(1, 1.0), (2, 0.5)]  # the results, at training_iteration
    assert texts(acc, "note") == [(10, "hello")]  # the number 1.0 later: a tag keeps its first kind
    assert [e.step for e in acc.Histograms("hist")] == [10]
    assert texts(acc, "trial_status") == [(2, "completed")]  # at the last result's step, not an in-trial one
    # one event per call: the first call's three values share one wall time and step
    events = [e for e in acc.Scalars("batch/loss") if e.step == 10] + [e for e in acc.Histograms("hist")]
    assert len({(e.wall_time, e.step) for e in events}) == 1
    # skipped: warned once per key, every occurrence counted (each file too)
    assert plugin.skipped == {"skip:thing": 2, "kind:note": 1, "files": 2}
