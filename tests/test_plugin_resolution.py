"""How ``plugins=`` is resolved: names via entry points, options, instances, modules, and every error."""

from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass

import pytest

from tests.thirdparty.fake_dist import make_distribution
from trackbridge import PluginError, PluginOptions, TrackerPlugin, hookimpl, option
from trackbridge.discovery import installed_plugins
from trackbridge.errors import MissingTrackerError
from trackbridge.loading import resolve
from trackbridge.testing import RecordingPlugin


@pytest.fixture
def acme(tmp_path, monkeypatch):
    root = make_distribution(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    yield root
    for mod in ("acme_recorder", "acme_hooks", "acme_needs_sdk"):
        sys.modules.pop(mod, None)


def test_builtin_plugins_are_registered_through_the_entry_point_group():
    found = installed_plugins()
    for name in ("wandb", "mlflow", "tensorboard", "aim", "comet"):
        assert name in found, found.keys()
        assert found[name][0].distribution == "trackbridge"


def test_third_party_name_resolves_to_a_new_instance_with_options(acme):
    [a] = resolve({"recorder": {"label": "x"}})
    [b] = resolve(["recorder"])
    assert type(a.obj).__name__ == "EntryPointRecorder"
    assert a.obj.label == "x" and b.obj.label == "default"
    assert a.obj is not b.obj
    assert "trackbridge_trial_result" in a.hooks and "trackbridge_setup" in a.hooks
    assert a.request == ("recorder", {"label": "x"})


def test_module_of_hook_functions_is_a_plugin(acme):
    [p] = resolve(["acme_hooks"])
    assert p.hooks == ("trackbridge_trial_result",)


def test_module_plugin_rejects_options(acme):
    with pytest.raises(PluginError, match="takes no options"):
        resolve({"acme_hooks": {"x": 1}})


def test_unknown_name_lists_installed_plugins(acme):
    with pytest.raises(PluginError) as err:
        resolve(["wandbb"])
    message = str(err.value)
    assert "unknown plugin 'wandbb'" in message
    for name in ("aim", "comet", "mlflow", "recorder", "tensorboard", "wandb"):
        assert name in message


def test_bad_options_fail_at_construction_with_the_plugin_name(acme):
    with pytest.raises(PluginError, match="bad options for plugin 'recorder'.*colour"):
        resolve({"recorder": {"colour": "red"}})
    with pytest.raises(PluginError, match="bad options for plugin 'recorder'.*label must be a string"):
        resolve({"recorder": {"label": 3}})


def test_missing_tracker_sdk_names_the_extra_to_install(acme):
    with pytest.raises(
        MissingTrackerError, match=r'needs surely_not_an_installed_sdk_xyz.*pip install "acme-tracker\[sdk\]"'
    ):
        resolve(["needs_sdk"])


def test_instances_and_names_mix(acme):
    mine = RecordingPlugin(name="mine")
    loaded = resolve([mine, "recorder"])
    assert [p.name for p in loaded] == ["mine", "recorder"]
    assert loaded[0].obj is mine


def test_duplicate_plugin_name_is_an_error(acme):
    with pytest.raises(PluginError, match="given twice"):
        resolve([RecordingPlugin(name="recorder"), "recorder"])


def test_class_instead_of_instance_is_an_error():
    with pytest.raises(PluginError, match=r"pass an instance \(RecordingPlugin\(\)\)"):
        resolve([RecordingPlugin])


def test_empty_and_missing_plugins_are_errors():
    with pytest.raises(PluginError):
        resolve([])
    with pytest.raises(PluginError):
        resolve(None)


def test_misspelt_hook_is_rejected_at_construction():
    class Typo:
        @hookimpl
        def trackbridge_trial_resutl(self, trial):
            pass

    with pytest.raises(PluginError, match="trackbridge_trial_resutl"):
        resolve([Typo()])


def test_hook_argument_not_in_spec_is_rejected():
    class WrongArg:
        @hookimpl
        def trackbridge_trial_result(self, trial, loss):
            pass

    with pytest.raises(PluginError, match="loss"):
        resolve([WrongArg()])


def test_object_without_hooks_is_rejected():
    class Nothing:
        pass

    with pytest.raises(PluginError, match="implements no trackbridge hook"):
        resolve([Nothing()])


def test_name_claimed_by_two_distributions_is_an_error(acme, tmp_path, monkeypatch):
    other = make_distribution(tmp_path / "other", name="other_dist", version="0.1")
    ep_file = next(other.glob("*.dist-info")) / "entry_points.txt"
    ep_file.write_text("[trackbridge]\nrecorder = acme_hooks\n")
    monkeypatch.syspath_prepend(str(other))
    with pytest.raises(PluginError, match="claimed by more than one distribution"):
        resolve(["recorder"])


def test_callback_is_picklable_without_secret_options(acme, ray_session):
    from trackbridge import TrackBridgeCallback

    cb = TrackBridgeCallback(plugins={"recorder": {"label": "keep"}, "mlflow": {"tracking_token": "s3cr3t-tok"}})
    blob = pickle.dumps(cb)
    assert b"s3cr3t-tok" not in blob
    back = pickle.loads(blob)
    assert back.plugin_names == ["recorder", "mlflow"]
    assert back.get_plugin("recorder").label == "keep"


def test_secret_options_are_not_pickled_but_paths_to_them_are():
    from trackbridge.secrets import without_secrets

    options = without_secrets(
        {
            "api_key": "k",
            "api_key_file": "/run/key",
            "tracking_token": "t",
            "project": "p",
            "tracking_uri": "https://me:pw@mlflow.example:5000/api",
            "settings": {"api_key": "nested-key", "console": "off"},
        }
    )
    assert options == {
        "api_key_file": "/run/key",
        "project": "p",
        "tracking_uri": "https://mlflow.example:5000/api",
        "settings": {"console": "off"},
    }


@dataclass(frozen=True)
class SecretiveOptions(PluginOptions):
    auth: str | None = option(None, secret=True)
    project: str = option("p")


class Secretive(TrackerPlugin[SecretiveOptions], name="secretive"):
    @hookimpl
    def trackbridge_trial_result(self, trial, step, metrics): ...


def test_named_plugin_options_declared_secret_are_not_pickled(ray_session):
    """An option declared ``secret=True`` but not named like a credential still stays out of tuner.pkl."""
    from trackbridge import TrackBridgeCallback
    from trackbridge.loading import LoadedPlugin, build_manager, picklable_request

    obj = Secretive(auth="S3CRET-AUTH", project="q")
    manager, hooks = build_manager("secretive", obj)
    named = LoadedPlugin(
        "secretive", obj, manager, hooks, request=("secretive", {"auth": "S3CRET-AUTH", "project": "q"})
    )
    assert picklable_request(named) == ("secretive", {"project": "q"})
    assert b"S3CRET-AUTH" not in pickle.dumps(TrackBridgeCallback(plugins=[obj]))
    assert b"nested-key" not in pickle.dumps(
        TrackBridgeCallback(plugins={"wandb": {"mode": "offline", "settings": {"api_key": "nested-key"}}})
    )


def test_a_callback_pickled_by_trackbridge_0_1_0_still_restores(acme, ray_session):
    """tuner.pkl of an experiment started before the bridge refactor: the callback's old attributes."""
    from trackbridge import TrackBridgeCallback

    old_state = {
        "_requests": [("recorder", {"label": "keep"})],
        "_excludes": ("eval",),
        "_include_auto_metrics": False,
        "_redact_patterns": (),
        "_worker_options": {
            "queue_size": 7,
            "flush_interval": 0.25,
            "stuck_timeout": 9.0,
            "max_retries": 1,
            "retry_backoff": 0.1,
        },
        "_fail_fast": True,
        "_isolate": (),
        "_drain_timeout": 30.0,
        "_restored_state": {"trials": {"t1": {"last_step": 4, "open": True, "config": {}}}},
        "_skipped_replays": 0,
        "_used_restored_state": None,
    }
    callback = TrackBridgeCallback.__new__(TrackBridgeCallback)
    callback.__setstate__(old_state)
    assert callback.plugin_names == ["recorder"] and callback.get_plugin("recorder").label == "keep"
    settings = callback._bridge.settings
    assert settings.excludes == ("eval",) and settings.redact_enabled is False and settings.fail_fast
    assert settings.delivery.queue_size == 7 and settings.drain_timeout == 30.0
    assert callback.get_state() == old_state["_restored_state"]
    back = pickle.loads(pickle.dumps(callback))  # and it pickles again in the new form
    assert back.plugin_names == ["recorder"]
