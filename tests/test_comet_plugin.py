"""The Comet plugin: real Tune runs into offline archives, read back with ``tests/comet_reader.py`` (zipfile and
json: the messages ``comet upload`` would send), plus the conformance kit and the pure parts.

No Comet account and no network: every experiment here is offline (the default when no API key is configured).
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import tempfile
import time
import zipfile
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from ray import tune

import trackbridge
from tests.comet_reader import by_trial, experiments, read_archive
from tests.step_checkpoints import first_step, step_checkpoint
from trackbridge import CheckpointInfo, ExperimentInfo, LoggedFile, TrackBridgeCallback, TrialInfo, TrialStatus
from trackbridge.testing.conformance import SCENARIOS, StoredRuns, check_plugin
from trackbridge_comet import CometPlugin
from trackbridge_comet.experiments import experiment_key

#: Message types of an archive holding only what TrackBridge logs (no code, packages, git or host data).
TRACKBRIDGE_ONLY = {"metric_msg", "parameter_msg", "log_other", "file_upload:asset", "file_upload:model-element"}
#: Message types the SDK writes when it logs the driver's environment (log_environment=True).
ENVIRONMENT = {"installed_packages", "system_details", "file_upload:source_code"}
STATUS = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "unfinished"}


@pytest.fixture(autouse=True)
def _no_comet_key(monkeypatch):
    """No API key in the environment: the plugin's default is offline."""
    for name in ("COMET_API_KEY", "COMET_PROJECT_NAME", "COMET_WORKSPACE", "COMET_OFFLINE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)


def _row(callback: TrackBridgeCallback) -> dict:
    [row] = [r for r in callback.report["plugins"] if r["plugin"] == "comet"]
    return row


def _tuner(trainable, workdir: Path, name: str, param_space: dict, options: dict | None = None, **run_config):
    callback = TrackBridgeCallback(plugins={"comet": dict(options or {})}, flush_interval=0.1)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        run_config=tune.RunConfig(
            name=name, storage_path=str(workdir / "ray"), callbacks=[callback], verbose=0, **run_config
        ),
    ), callback


# ---------------------------------------------------------------------------------------------- one Tune run
STEPS = 5


def busy_trainable(config):
    for step in range(1, STEPS + 1):
        if config["x"] == 4 and step == 3:
            raise ValueError("boom: diverged on purpose")
        trackbridge.log({"batch_loss": config["x"] / step}, step=100 + step)
        if step == 2:
            note = Path(tempfile.mkdtemp(), "notes.txt")
            note.write_text(f"trial {config['x']}\n")
            trackbridge.log_artifact(str(note), name="notes.txt")
        checkpoint = step_checkpoint(step) if step % 2 == 0 else None
        metrics = {"loss": config["x"] * 10.0 + step, "eval": {"acc": step / STEPS}, "flag": step == 1}
        metrics.update({"nan": math.nan, "note": "text", "hist": [1.0, 2.0]})
        tune.report(metrics, checkpoint=checkpoint)


def test_four_concurrent_trials_one_experiment_each_every_step_params_tags_status_models(ray_session, workdir):
    t, callback = _tuner(
        tune.with_resources(busy_trainable, {"cpu": 0.5}),  # all four run at once on 2 CPUs
        workdir,
        "busy",
        {"x": tune.grid_search([1, 2, 3, 4]), "const": "fixed", "opt": {"name": "sgd"}},
        {"tags": ["team-a"], "project_name": "tb-tests", "workspace": "ws", "save_checkpoints": True},
        failure_config=tune.FailureConfig(max_failures=0),
    )
    grid = t.fit()
    assert len(grid.errors) == 1
    archive_dir = workdir / "ray" / "busy" / "comet"  # the default: <experiment directory>/comet
    plugin = callback.get_plugin("comet")
    assert plugin.view_command(None) == f"comet upload {archive_dir}/*.zip"

    names = sorted(os.listdir(archive_dir))
    found = by_trial(archive_dir)
    trials = {r.config["x"]: r for r in grid}
    assert len(names) == 4 and len(found) == 4  # one archive, one experiment per trial
    for x, result in trials.items():
        trial_id = result.metrics["trial_id"]
        e = found[trial_id]
        assert names.count(f"{e.key}-001.zip") == 1 and e.key == experiment_key("busy", trial_id)
        [part] = e.parts
        assert (part.project_name, part.workspace, part.resume_strategy) == ("tb-tests", "ws", "get_or_create")
        assert e.name == e.other("trial_name") and e.name.endswith(trial_id)  # named after the trial
        assert e.tags == {"team-a", "busy"}
        assert e.params == {"x": x, "const": "fixed", "opt/name": "sgd"}  # the constant is a parameter too
        assert e.other("tune_experiment") == "busy" and e.other("trial_id") == trial_id
        last = 2 if x == 4 else STEPS
        assert e.series("loss") == [(s, x * 10.0 + s) for s in range(1, last + 1)]
        assert e.steps("eval/acc") == list(range(1, last + 1))
        assert e.series("flag")[0] == (1, 1.0)  # a bool is a number
        assert {v for _s, v in e.series("nan")} == {"NaN"}  # kept; Comet's SDK stores NaN as "NaN"
        assert not e.series("note") and not e.series("hist")  # not numbers: skipped
        assert e.series("batch_loss") == [(100 + s, x / s) for s in range(1, last + 1)]  # the call's own steps
        logged = [a for a in e.assets if a.upload_type == "asset"]
        assert [(a.name, a.data) for a in logged] == [("logged/notes.txt", f"trial {x}\n".encode())]
        models = sorted((a.group, a.name, a.data) for a in e.assets if a.upload_type == "model-element")
        assert models == [(f"checkpoint_{s}", "step", str(s).encode()) for s in range(2, last + 1, 2)]
        assert e.message_types <= TRACKBRIDGE_ONLY  # no code, packages, git, host or system metrics
        assert sorted(part.files) == sorted(["experiment.json", "messages.json", *(a.file for a in e.assets)])
        if x == 4:
            assert e.other("status") == "FAILED" and "boom: diverged on purpose" in e.other("error")
        else:
            assert e.other("status") == "FINISHED" and e.other("error") is None
    assert plugin.warn.counts["skip:note"] == plugin.warn.counts["skip:hist"] == 3 * STEPS + 2
    row = _row(callback)
    assert row["failed"] == 0 and row["dropped"] == 0


# ---------------------------------------------------------------------------------------------- environment, key
def tiny_trainable(config):
    for step in range(1, 3):
        tune.report({"loss": 1.0 / step})


def _files_containing(root: Path, secret: bytes) -> list[str]:
    """Files under ``root`` whose bytes, or the bytes of a zip member, hold ``secret``."""
    hits = []
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            data = Path(path).read_bytes()
            if secret in data:
                hits.append(path)
            elif zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as z:
                    hits += [f"{path}:{m}" for m in z.namelist() if secret in z.read(m)]
    return hits


def test_environment_logging_is_opt_in_and_the_api_key_reaches_no_file(ray_session, workdir):
    secret = "cometkey-probe-3f9a1c"
    archive_dir = workdir / "archives"
    options = {"mode": "offline", "api_key": secret, "log_environment": True, "offline_directory": str(archive_dir)}
    t, callback = _tuner(tiny_trainable, workdir, "env", {"lr": 0.1}, options)
    assert secret.encode() not in pickle.dumps(callback) and secret not in repr(callback.get_plugin("comet"))
    t.fit()
    [e] = experiments(archive_dir).values()
    assert ENVIRONMENT <= e.message_types
    assert e.steps("loss") == [1, 2] and e.other("status") == "FINISHED"
    assert (workdir / "ray" / "env" / "tuner.pkl").exists()
    assert _files_containing(workdir, secret.encode()) == []  # tuner.pkl, Tune's state and the archive included
    assert _row(callback)["failed"] == 0


# ---------------------------------------------------------------------------------------------- restore
RESTORE_STEPS = 6


def crash_once_trainable(config):
    """Checkpoints at steps 2, 4, 6; x=1 raises at step 4 on its first attempt only (marker file)."""
    marker = Path(config["marker_dir"], f"crashed_{config['x']}")
    for step in range(first_step(), RESTORE_STEPS + 1):
        if config["x"] == 1 and step == 4 and not marker.exists():
            marker.touch()
            raise RuntimeError("crash stand-in")
        tune.report({"loss": config["x"] * 100.0 + step}, checkpoint=step_checkpoint(step) if step % 2 == 0 else None)


def test_a_restored_trial_continues_its_experiment_key_in_a_second_archive_with_no_step_twice(ray_session, workdir):
    t, _ = _tuner(
        crash_once_trainable,
        workdir,
        "restore",
        {"x": tune.grid_search([1, 2]), "marker_dir": str(workdir)},
        failure_config=tune.FailureConfig(max_failures=0),
    )
    assert len(t.fit().errors) == 1
    experiment_dir = workdir / "ray" / "restore"
    restored = tune.Tuner.restore(str(experiment_dir), trainable=crash_once_trainable, resume_errored=True)
    assert not restored.fit().errors

    archive_dir = experiment_dir / "comet"
    assert json.loads((experiment_dir / "trackbridge_comet.json").read_text())["mode"] == "offline"  # recorded
    found = {e.params["x"]: e for e in experiments(archive_dir).values()}
    assert sorted(found) == [1, 2]  # one experiment (key) per trial, whatever the number of archives
    crashed, steady = found[1], found[2]
    assert [os.path.basename(p.path) for p in crashed.parts] == [f"{crashed.key}-001.zip", f"{crashed.key}-002.zip"]
    assert [p.others["status"] for p in crashed.parts] == [["FAILED"], ["FINISHED"]]
    assert "crash stand-in" in crashed.parts[0].others["error"][0]
    assert crashed.other("status") == "FINISHED" and crashed.other("error") == ""  # uploaded in name order
    # every step once across both archives: the journal kept step 3 (and 2, 1) from being delivered again
    assert crashed.series("loss") == [(s, 100.0 + s) for s in range(1, RESTORE_STEPS + 1)]
    assert [p.metrics[0][2] for p in crashed.parts] == [1, 4]
    assert len(steady.parts) == 1 and steady.steps("loss") == list(range(1, RESTORE_STEPS + 1))


# ---------------------------------------------------------------------------------------------- conformance kit
def _read_back(directory: Path) -> StoredRuns:
    stored = StoredRuns()
    for e in experiments(directory / "comet").values():
        trial_id = e.other("trial_id")
        stored.runs_per_trial[trial_id] = stored.runs_per_trial.get(trial_id, 0) + 1
        stored.steps[trial_id] = e.steps("loss")
        stored.statuses[trial_id] = STATUS.get(e.other("status"), e.other("status"))
        if e.steps("batch_loss"):
            stored.logged_steps[trial_id] = e.steps("batch_loss")
    return stored


def test_comet_plugin_conforms(tmp_path):
    report = check_plugin(lambda d: CometPlugin(offline_directory=str(d / "comet")), _read_back, tmp_path)
    assert report.ok, "\n" + report.summary()
    assert len(report.results) == len(SCENARIOS)


# ---------------------------------------------------------------------------------------------- pure parts
EXPERIMENT = ExperimentInfo(name="e")


def _trial(trial_id: str = "t1", **config) -> TrialInfo:
    return TrialInfo(
        trial_id=trial_id, trial_name=f"trial_{trial_id}", experiment_name="e", config=config or {"lr": 0.1}
    )


def _run(plugin: CometPlugin, experiment: ExperimentInfo = EXPERIMENT) -> None:
    plugin.trackbridge_setup()
    plugin.trackbridge_experiment_start(experiment)


def _checkpoint(tmp_path: Path, step: int, tag: str) -> CheckpointInfo:
    directory = tmp_path / "checkpoints" / f"{tag}_{step}"
    directory.mkdir(parents=True)
    (directory / "weights").write_text(f"{tag} {step}")
    return CheckpointInfo(path=str(directory), step=step)


def test_a_pbt_exploit_is_marked_and_the_steps_and_checkpoints_after_it_are_logged_again_apart(tmp_path):
    archive_dir = tmp_path / "archives"
    plugin = CometPlugin(offline_directory=str(archive_dir), save_checkpoints=True)
    _run(plugin)
    placeholder = archive_dir / f"{experiment_key('e', 't1')}-Killed.zip"
    zipfile.ZipFile(placeholder, "w").close()  # the empty zip Comet creates at start, left by a killed driver
    trial = _trial()
    plugin.trackbridge_trial_start(trial, resumed=False, last_step=None)
    for step in (1, 2, 3, 4):
        plugin.trackbridge_trial_result(trial, step, {"loss": float(step)}, time.time())
        if step % 2 == 0:
            plugin.trackbridge_trial_checkpoint(trial, _checkpoint(tmp_path, step, "first"))
    exploited = _trial(lr=0.5)
    plugin.trackbridge_trial_start(exploited, resumed=True, last_step=4)  # still open: continues
    plugin.trackbridge_trial_config_update(exploited, 2, {"lr": 0.5})  # back to step 2: branch 1
    for step in (3, 4, 5):
        plugin.trackbridge_trial_result(exploited, step, {"loss": 10.0 * step}, time.time())
    plugin.trackbridge_trial_checkpoint(exploited, _checkpoint(tmp_path, 4, "second"))
    plugin.trackbridge_trial_config_update(exploited, 5, {"lr": 0.7})  # from its own last step: no new branch
    plugin.trackbridge_trial_result(exploited, 6, {"loss": 60.0}, time.time())
    plugin.trackbridge_trial_checkpoint(exploited, _checkpoint(tmp_path, 6, "third"))
    plugin.trackbridge_trial_complete(exploited, TrialStatus.COMPLETED, None)
    plugin.trackbridge_experiment_end(EXPERIMENT)

    assert not placeholder.exists() and [os.path.basename(p) for p in plugin.archives] == [
        f"{experiment_key('e', 't1')}-001.zip"
    ]
    [e] = experiments(archive_dir).values()
    assert len(e.parts) == 1
    assert e.series("loss") == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (3, 30.0), (4, 40.0), (5, 50.0), (6, 60.0)]
    assert e.series("trackbridge/exploit") == [(2, 1.0), (5, 1.0)]
    assert e.parts[0].params["lr"] == [(0.1, None), (0.5, 2), (0.7, 5)] and e.param("lr") == 0.7
    models = sorted((a.group, a.data) for a in e.assets if a.upload_type == "model-element" and a.name == "weights")
    assert models == [
        ("checkpoint_2", b"first 2"),
        ("checkpoint_4", b"first 4"),  # the first branch's model of step 4 keeps its files
        ("checkpoint_4_branch1", b"second 4"),
        ("checkpoint_6_branch1", b"third 6"),
    ]


def test_a_trial_started_again_after_it_failed_reopens_its_key_and_experiment_end_closes_what_is_open(tmp_path):
    """Complete (failed), then start again: what a ``Tuner.restore(..., resume_errored=True)`` sends for a failed
    trial, here in one plugin object. (A trial Tune retries is never completed in between: its start finds the
    experiment open and continues it, as the PBT exploit's start does in the test above.)"""
    plugin = CometPlugin(offline_directory=str(tmp_path))
    _run(plugin)
    a, b = _trial("a"), _trial("b")
    plugin.trackbridge_trial_start(a, resumed=False, last_step=None)
    plugin.trackbridge_trial_result(a, 1, {"loss": 1.0}, time.time())
    plugin.trackbridge_trial_complete(a, TrialStatus.FAILED, "Traceback ...\n" + "x" * 5000 + "\nValueError: bad")
    plugin.trackbridge_trial_start(a, resumed=True, last_step=1)  # started again after it ended
    plugin.trackbridge_trial_result(a, 2, {"loss": 0.5}, time.time())
    plugin.trackbridge_trial_complete(a, TrialStatus.COMPLETED, None)
    plugin.trackbridge_trial_start(b, resumed=False, last_step=None)
    plugin.trackbridge_trial_result(b, 1, {"loss": 1.0}, time.time())
    plugin.trackbridge_experiment_end(EXPERIMENT)  # b had no trial_complete: ended KILLED

    found = by_trial(tmp_path)
    first, second = found["a"].parts
    error = first.others["error"][0]
    assert len(error) == 1000 and error.startswith("[truncated: ") and error.endswith("ValueError: bad")
    assert second.others["status"] == ["FINISHED"] and second.others["error"] == [""]
    assert found["a"].steps("loss") == [1, 2]
    assert found["b"].other("status") == "KILLED" and len(plugin.archives) == 3


def test_default_directory_and_an_unwritable_one_is_a_clear_error_not_a_temporary_fallback(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="trackbridge")
    plugin = CometPlugin()
    local = ExperimentInfo(name="exp", path=str(tmp_path / "exp"), local_path=str(tmp_path / "staging"))
    _run(plugin, local)
    assert (tmp_path / "exp" / "comet").is_dir()
    [said] = [r.getMessage() for r in caplog.records if "offline archives go to" in r.getMessage()]
    assert f"upload with: comet upload {tmp_path / 'exp' / 'comet'}/*.zip" in said
    assert plugin.view_command(local) == f"comet upload {tmp_path / 'exp' / 'comet'}/*.zip"

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    bad = CometPlugin(offline_directory=str(blocker / "comet"))
    bad.trackbridge_setup()
    unique = ExperimentInfo(name=f"unwritable-{os.getpid()}-{time.time_ns()}")
    with pytest.raises(OSError, match=r"cannot write offline archives to .*a_file/comet.*offline_directory="):
        bad.trackbridge_experiment_start(unique)
    trial = TrialInfo(trial_id="t1", trial_name="trial_t1", experiment_name=unique.name)
    with pytest.raises(OSError, match="cannot write offline archives"):  # every trial's start says so again
        bad.trackbridge_trial_start(trial, resumed=False, last_step=None)
    bad.trackbridge_experiment_end(unique)
    key = experiment_key(unique.name, "t1")
    assert not list(Path(tempfile.gettempdir()).glob(f"*/{key}*"))  # no archive in a temporary directory either


def test_remote_storage_archives_are_written_locally_and_copied_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    remote = pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())
    (tmp_path / "bucket").mkdir()
    experiment = ExperimentInfo(
        name="s3exp", path="runs/s3exp", local_path=str(tmp_path / "staging"), filesystem=remote
    )
    plugin = CometPlugin()
    _run(plugin, experiment)
    trial = _trial()
    plugin.trackbridge_trial_start(trial, resumed=False, last_step=None)
    plugin.trackbridge_trial_result(trial, 1, {"loss": 1.0}, time.time())
    plugin.trackbridge_trial_complete(trial, TrialStatus.COMPLETED, None)
    name = f"{experiment_key('e', 't1')}-001.zip"  # the trial says its experiment is "e"
    local = tmp_path / "tmp" / "trackbridge-comet" / "s3exp" / name
    copied = tmp_path / "bucket" / "runs" / "s3exp" / "comet" / name
    assert local.read_bytes() == copied.read_bytes()
    assert not (tmp_path / "staging").exists()  # never inside Tune's synced staging folder
    assert read_archive(copied).metrics == [("loss", 1.0, 1)]


def test_in_trial_files_keep_their_names_under_logged(tmp_path):
    source = tmp_path / "src"
    (source / "plots").mkdir(parents=True)
    (source / "plots" / "a.txt").write_text("a")
    (source / "one-0001.txt").write_text("one")
    plugin = CometPlugin(offline_directory=str(tmp_path / "out"))
    _run(plugin)
    trial = _trial()
    plugin.trackbridge_trial_start(trial, resumed=False, last_step=None)
    files = [LoggedFile(str(source / "one-0001.txt"), "../../one.txt"), LoggedFile(str(source / "plots"), "plots")]
    plugin.trackbridge_trial_log(trial, 7, {"x": 1, "s": "skipped"}, files, time.time())
    plugin.trackbridge_trial_complete(trial, TrialStatus.COMPLETED, None)
    [e] = experiments(tmp_path / "out").values()
    assert sorted((a.name, a.data, a.step) for a in e.assets) == [
        ("logged/one.txt", b"one", 7),
        ("logged/plots/a.txt", b"a", 7),
    ]
    assert e.series("x") == [(7, 1.0)] and plugin.warn.counts == {"skip:s": 1}


def test_options_mode_destination_and_tool_hints(tmp_path, monkeypatch):
    assert CometPlugin().mode() == "offline"
    assert CometPlugin(api_key="k" * 10).mode() == "online"
    assert CometPlugin(api_key="k" * 10, mode="offline").mode() == "offline"
    monkeypatch.setenv("COMET_API_KEY", "from-env")
    assert CometPlugin().mode() == "online"
    monkeypatch.delenv("COMET_API_KEY")
    assert CometPlugin.offline_options(str(tmp_path)) == {"mode": "offline", "offline_directory": f"{tmp_path}/comet"}
    assert CometPlugin(offline_directory="rel").options.offline_directory == os.path.abspath("rel")
    assert CometPlugin(project_name="p").tracker_destination() == "comet|offline||p|<experiment>/comet"
    assert CometPlugin(mode="online", workspace="w").view_command(None) is None
    with pytest.raises(TypeError, match="did you mean 'project_name'"):
        CometPlugin(projectname="p")
    with pytest.raises(ValueError, match="must not contain '/'"):
        CometPlugin(project_name="ws/p")
    with pytest.raises(ValueError, match="use the plugin's 'tags' option"):
        CometPlugin(experiment_config={"tags": ["x"]})
    with pytest.raises(ValueError, match="did you mean 'log_code'"):
        CometPlugin(experiment_config={"log_cod": True})
    with pytest.raises(ValueError, match="local directory"):
        CometPlugin(offline_directory="s3://bucket/x")
    plugin = CometPlugin(api_key="sk-secret-1", tags=("a",))
    clone = pickle.loads(pickle.dumps(plugin))
    assert b"sk-secret-1" not in pickle.dumps(plugin) and clone.options.api_key is None and clone.options.tags == ["a"]
    assert b"sk-secret-1" not in pickle.dumps(TrackBridgeCallback(plugins={"comet": {"api_key": "sk-secret-1"}}))


# ---------------------------------------------------------------------------------------------- online, no network
class _FakeOnline:
    """What ``comet_ml.start`` hands back online, without a server: records the calls; ``flush()`` says ``flushes``."""

    def __init__(self, alive: bool = True, flushes: bool = True) -> None:
        self.alive, self.disabled, self.flushes, self.calls = alive, False, flushes, []

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self.calls.append(name)

    def flush(self) -> bool:
        self.calls.append("flush")
        return self.flushes


def test_online_flush_makes_results_durable_and_an_experiment_comet_did_not_start_is_an_error(monkeypatch):
    import comet_ml

    opened: list[_FakeOnline] = []
    monkeypatch.setattr(comet_ml, "start", lambda **kwargs: opened.append(_FakeOnline(**fake)) or opened[-1])
    assert CometPlugin(mode="online").durable_after_flush  # the transport reads it before setup
    assert CometPlugin(api_key="k" * 10).durable_after_flush and not CometPlugin().durable_after_flush
    assert not CometPlugin(api_key="k" * 10, mode="offline").durable_after_flush
    monkeypatch.setenv("COMET_API_KEY", "from-env-key")
    assert CometPlugin().durable_after_flush

    fake: dict = {}
    plugin = CometPlugin(project_name="p")  # online: the key is in the environment
    _run(plugin)
    trial = _trial()
    plugin.trackbridge_trial_start(trial, resumed=False, last_step=None)
    plugin.trackbridge_trial_result(trial, 1, {"loss": 1.0}, time.time())
    plugin.trackbridge_flush()
    opened[0].flushes = False
    with pytest.raises(RuntimeError, match="Comet did not confirm everything logged for trial_t1"):
        plugin.trackbridge_flush()
    plugin.trackbridge_trial_complete(trial, TrialStatus.COMPLETED, None)
    assert opened[0].calls == ["log_others", "log_parameters", "log_metrics", "flush", "flush", "log_other", "end"]
    plugin.trackbridge_flush()  # nothing open: nothing to flush

    fake = {"alive": False}  # Experiment._start caught its own error
    with pytest.raises(RuntimeError, match=r"Comet could not start experiment [0-9a-f]{40} \(online") as raised:
        plugin.trackbridge_trial_start(_trial("t2"), resumed=False, last_step=None)
    assert "from-env-key" not in str(raised.value) and opened[-1].calls == []
    offline = CometPlugin(mode="offline", offline_directory="unused")
    offline.trackbridge_flush()  # offline: not durable before end(), nothing to do


SECRET = "cometkey-leak-probe-8d2e41"


def test_a_key_comet_refuses_is_masked_in_errors_logs_and_the_delivery_report(tmp_path, monkeypatch, caplog):
    import comet_ml
    from comet_ml.exceptions import InvalidAPIKey

    from trackbridge.bridge import Bridge

    def refusing_start(**kwargs):  # what comet_ml.start does with a key the server refuses
        error = InvalidAPIKey(kwargs["api_key"], "www.comet.com")
        logging.getLogger("comet_ml").error(
            "Failed to create experiment: %r", error, exc_info=(InvalidAPIKey, error, None)
        )
        raise error

    monkeypatch.setattr(comet_ml, "start", refusing_start)
    comet_lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: comet_lines.append(logging.Formatter().format(record))  # type: ignore[method-assign]
    logging.getLogger("comet_ml").addHandler(handler)  # before setup, where the plugin installs its filter
    caplog.set_level(logging.DEBUG, logger="trackbridge")  # DEBUG: the core logs tracebacks too
    try:
        bridge = Bridge({"comet": {"mode": "online", "api_key": SECRET}}, flush_interval=0.0)
        machine = bridge.start()
        machine.begin_experiment(ExperimentInfo(name="leak", path=str(tmp_path / "exp")))
        trial = _trial()
        machine.start(trial)
        for step in range(1, 102):  # 100 failures in a row disable the plugin, with the last error's repr
            machine.result(trial.trial_id, step, {"loss": 1.0})
        machine.complete(trial, TrialStatus.COMPLETED, None)
        report = bridge.close()
    finally:
        logging.getLogger("comet_ml").removeHandler(handler)

    assert report is not None
    [row] = report["plugins"]
    assert row["failed"] == 100 and "InvalidAPIKey: ('***', 'www.comet.com')" in row["disabled_reason"]
    assert "***" in caplog.text and SECRET not in caplog.text
    assert comet_lines and all(SECRET not in line and "***" in line for line in comet_lines)
    assert _files_containing(tmp_path, SECRET.encode()) == []  # trackbridge_report.json and the journal included

    monkeypatch.setenv("COMET_API_KEY", SECRET)  # a key Comet finds itself is masked too
    plugin = CometPlugin()
    _run(plugin)
    monkeypatch.setattr(comet_ml, "start", lambda **kwargs: refusing_start(api_key=os.environ["COMET_API_KEY"]))
    with pytest.raises(RuntimeError) as raised:
        plugin.trackbridge_trial_start(_trial(), resumed=False, last_step=None)
    assert str(raised.value) == "trackbridge: comet: InvalidAPIKey: ('***', 'www.comet.com')"
    assert raised.value.__cause__ is None and raised.value.__context__ is None and SECRET not in repr(raised.value)


def test_a_restore_that_finds_no_key_refuses_to_turn_an_online_experiment_offline(tmp_path, monkeypatch):
    experiment = ExperimentInfo(name="was-online", path=str(tmp_path / "exp"))
    monkeypatch.setenv("COMET_API_KEY", "key-of-the-first-driver")
    first = CometPlugin(offline_directory=str(tmp_path / "archives"))
    _run(first, experiment)  # online: nothing is opened before a trial starts
    assert json.loads((tmp_path / "exp" / "trackbridge_comet.json").read_text()) == {
        "plugin": "comet",
        "mode": "online",
    }
    monkeypatch.delenv("COMET_API_KEY")  # the restored driver has no key (the option is not in tuner.pkl)

    options = {"api_key": "k" * 10, "offline_directory": str(tmp_path / "archives")}
    plugin = pickle.loads(pickle.dumps(TrackBridgeCallback(plugins={"comet": options}))).get_plugin("comet")
    assert plugin.options.api_key is None and not plugin.durable_after_flush
    plugin.trackbridge_setup()
    resumed = ExperimentInfo(name="was-online", path=str(tmp_path / "exp"), resumed=True)
    with pytest.raises(
        RuntimeError, match=r"'was-online' logged to Comet online before it was restored.*COMET_API_KEY"
    ):
        plugin.trackbridge_experiment_start(resumed)
    with pytest.raises(RuntimeError, match="logged to Comet online before it was restored"):  # every trial's events
        plugin.trackbridge_trial_start(_trial(), resumed=True, last_step=3)
    plugin.trackbridge_experiment_end(resumed)
    assert not (tmp_path / "archives").exists() and plugin.archives == []  # nothing written offline

    fresh = CometPlugin(offline_directory=str(tmp_path / "archives"))  # a new fit() (not restored): its own mode
    _run(fresh, experiment)
    assert json.loads((tmp_path / "exp" / "trackbridge_comet.json").read_text())["mode"] == "offline"
    explicit = CometPlugin(mode="offline", offline_directory=str(tmp_path / "archives"))
    _run(explicit, ExperimentInfo(name="was-online", path=str(tmp_path / "other"), resumed=True))
    assert not (tmp_path / "other" / "trackbridge_comet.json").exists()  # mode given: pickled, nothing recorded
