"""What is specific to Trackio: the mapping, read back with Trackio's own readers."""

from __future__ import annotations

import math

import pytest
from trackbridge_trackio import TrackioPlugin, read_project

from trackbridge import TrialStatus
from trackbridge.errors import PluginError
from trackbridge.testing import drive, scripted_trial


def test_config_values_texts_nan_and_the_failure_are_stored_as_trackio_shows_them():
    plugin = TrackioPlugin(project="mapping")
    stats = drive(
        plugin,
        [
            scripted_trial(
                "t1",
                config={"lr": 0.1, "model": {"depth": 3}},
                results=[{"loss": 1.0, "acc": math.nan, "note": "warm-up", "hist": [1, 2]}, {"loss": 0.5}],
                status=TrialStatus.FAILED,
                error="ValueError: diverged",
                experiment_name="exp",
            )
        ],
    )
    assert stats.failed == 0 and stats.dropped == 0
    [trial] = read_project("mapping").values()
    assert trial.names == ["scripted_t1"]
    assert trial.config["lr"] == 0.1 and trial.config["model/depth"] == 3
    assert trial.config["trackbridge/trial_id"] == "t1" and trial.config["trackbridge/experiment"] == "exp"
    assert trial.series("loss") == [(1, 1.0), (2, 0.5)]
    [(step, acc)] = trial.series("acc")
    assert step == 1 and math.isnan(acc)
    assert trial.series("note") == [(1, "warm-up")] and trial.steps("hist") == []  # a list: skipped, warned
    assert trial.status == "failed"
    [ending] = trial.alerts
    assert (ending["title"], ending["level"], ending["text"]) == ("Trial failed", "error", "ValueError: diverged")


def test_options_are_validated_by_name():
    with pytest.raises(TypeError, match="did you mean 'project'"):
        TrackioPlugin(projet="p")
    with pytest.raises(ValueError, match="project.*must not be empty"):
        TrackioPlugin(project=" ")


def test_a_second_storage_folder_in_one_process_is_refused_with_the_reason(tmp_path):
    import trackio  # noqa: F401  (Trackio now stores under the session's folder, see conftest.py)

    from trackbridge.events import ExperimentInfo
    from trackbridge.testing.script import LifecycleScript

    played = LifecycleScript(ExperimentInfo(name="x")).run(TrackioPlugin(directory=str(tmp_path / "other")))
    assert any("reads TRACKIO_DIR once" in e for e in played.errors), played.errors


def test_naming_it_in_trackbridge_finds_the_installed_entry_point():
    from trackbridge.loading import resolve

    [loaded] = resolve({"trackio": {"project": "p"}})
    assert loaded.name == "trackio" and isinstance(loaded.obj, TrackioPlugin)
    with pytest.raises(PluginError, match="unknown option 'projet'"):
        resolve({"trackio": {"projet": "p"}})
