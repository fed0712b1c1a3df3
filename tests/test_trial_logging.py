"""``trackbridge.log`` inside trials: values travel to the driver and reach every plugin before the trial's
run is completed, for function and class trainables; outside a trial nothing breaks."""

from __future__ import annotations

import logging

from ray import tune

import trackbridge
from trackbridge import TrackBridgeCallback
from trackbridge.testing import RecordingPlugin

REPORTS = 3
LOGS_PER_REPORT = 4


def logging_trainable(config):
    path = f"/tmp/trackbridge-note-{config['x']}.txt"
    with open(path, "w") as f:
        f.write(f"x={config['x']}")
    for report in range(1, REPORTS + 1):
        for _ in range(LOGS_PER_REPORT):
            trackbridge.log({"batch": {"loss": 1.0 / report}, "note": "text"})
        tune.report({"loss": 1.0 / report})
    trackbridge.log({"final": config["x"]}, step=1000)  # logged after the last report, just before the end
    trackbridge.log_artifact(path, name="note.txt")


class LoggingTrainable(tune.Trainable):
    def setup(self, config):
        self.logger = trackbridge.get_logger(self)

    def step(self):
        self.logger.log({"inner": float(self.iteration)}, step=self.iteration + 1)
        return {"loss": 1.0, "done": self.iteration + 1 >= 3}


def _per_trial_logs(recorder: RecordingPlugin) -> dict[str, list[tuple]]:
    return {tid: [e for e in events if e[0] in ("log", "complete")] for tid, events in recorder.by_trial().items()}


def test_values_logged_in_a_function_trainable_reach_the_plugins_before_the_trial_completes(ray_session, workdir):
    recorder = RecordingPlugin()
    callback = TrackBridgeCallback(plugins=[recorder])
    tune.Tuner(
        logging_trainable,
        param_space={"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(name="inlog", storage_path=str(workdir), callbacks=[callback]),
    ).fit()
    per_trial = _per_trial_logs(recorder)
    assert len(per_trial) == 2
    for events in per_trial.values():
        logs, last = events[:-1], events[-1]
        assert last[0] == "complete" and all(e[0] == "log" for e in logs)
        value_logs = [e for e in logs if e[3]]
        assert [e[2] for e in value_logs] == list(range(1, REPORTS * LOGS_PER_REPORT + 1)) + [1000]
        assert value_logs[0][3] == {"batch/loss": 1.0, "note": "text"}
        assert value_logs[-1][3]["final"] in (1, 2)
        assert [e[4] for e in logs if e[4]] == [["note.txt"]]
    assert callback.report["late_trial_logs"] == 0


def test_a_class_trainable_logs_through_its_logger(ray_session, workdir):
    recorder = RecordingPlugin()
    tune.Tuner(
        LoggingTrainable,
        run_config=tune.RunConfig(
            name="inlog_cls", storage_path=str(workdir), callbacks=[TrackBridgeCallback(plugins=[recorder])]
        ),
    ).fit()
    [events] = _per_trial_logs(recorder).values()
    assert [(e[2], e[3]) for e in events[:-1]] == [(1, {"inner": 0.0}), (2, {"inner": 1.0}), (3, {"inner": 2.0})]
    assert events[-1][0] == "complete"


def test_outside_a_trial_log_warns_once_and_never_raises(caplog):
    with caplog.at_level(logging.WARNING, logger="trackbridge"):
        for _ in range(3):
            trackbridge.log({"x": 1})
        trackbridge.log_artifact(__file__)
    assert sum("nothing is listening" in r.getMessage() for r in caplog.records) == 1
