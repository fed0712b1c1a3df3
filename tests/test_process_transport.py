"""An isolated plugin's process, driven without Ray: every call is accounted for when the drain times out,
when the process dies while idle, and when a value cannot be sent to it."""

from __future__ import annotations

import os
import threading
import time

import pytest

from trackbridge import TrialInfo, hookimpl
from trackbridge.delivery import Dispatcher
from trackbridge.emitter import HookEmitter
from trackbridge.loading import resolve
from trackbridge.process_transport import transport_for
from trackbridge.settings import isolated_names, parse_settings
from trackbridge.transport import DeliveryOptions


class SlowPlugin:
    name = "slow"

    @hookimpl
    def trackbridge_trial_result(self, step):
        time.sleep(0.1)


class DiesWhenIdle:
    name = "dies"

    @hookimpl
    def trackbridge_trial_result(self, step):
        if step == 3:  # exit a moment after the last call was taken: the process is idle, then gone
            threading.Timer(0.3, os._exit, (17,)).start()


class Plain:
    name = "plain"

    @hookimpl
    def trackbridge_trial_result(self, step, metrics):
        pass


def _isolated(plugin, **options) -> tuple[Dispatcher, HookEmitter]:
    options.setdefault("flush_interval", 0.0)
    d = Dispatcher(resolve([plugin]), DeliveryOptions(**options), transport_for=transport_for([plugin.name]))
    d.start()
    return d, HookEmitter(d.submit)


TRIAL = TrialInfo(trial_id="a", trial_name="t_a", experiment_name="e")


def test_a_drain_timeout_accounts_for_every_call_the_process_took():
    d, emit = _isolated(SlowPlugin())
    for step in range(1, 31):
        emit.trial_result(TRIAL, step, {"x": step}, 0.0)
    finished = d.close(1.0)
    [stats] = d.stats()
    assert finished == {"slow": False}
    assert stats.delivered >= 1 and stats.dropped >= 1
    assert stats.delivered + stats.dropped == 30, stats  # each result either stored or counted as lost


def test_a_process_that_dies_while_idle_is_reported_with_its_exit_code():
    d, emit = _isolated(DiesWhenIdle())
    for step in range(1, 4):
        emit.trial_result(TRIAL, step, {}, 0.0)
    time.sleep(1.5)
    finished = d.close(10)
    [stats] = d.stats()
    assert finished == {"dies": False}
    assert stats.disabled_reason is not None and "exit code 17" in stats.disabled_reason
    assert stats.dropped == 3  # taken by the process, never confirmed


def test_a_value_that_cannot_be_sent_fails_that_call_only():
    d, emit = _isolated(Plain())
    emit.trial_result(TRIAL, 1, {"x": 1.0}, 0.0)
    emit.trial_result(TRIAL, 2, {"lock": threading.Lock()}, 0.0)  # not picklable, even by cloudpickle
    emit.trial_result(TRIAL, 3, {"x": 3.0}, 0.0)
    started = time.monotonic()
    finished = d.close(30)
    [stats] = d.stats()
    assert finished == {"plain": True} and time.monotonic() - started < 20
    assert (stats.delivered, stats.failed, stats.dropped) == (2, 1, 0)
    assert stats.errors_by_hook == {"trackbridge_trial_result": 1}


class WritesItsPid:
    """Writes the pid of the process its hooks run in (a class attribute picks threads or a process)."""

    name = "pid_thread"
    prefers_own_process = False

    def __init__(self, path) -> None:
        self.path = str(path)

    @hookimpl
    def trackbridge_trial_result(self, step):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")


class PrefersItsOwnProcess(WritesItsPid):
    name = "pid_process"
    prefers_own_process = True


@pytest.mark.parametrize("isolate", ["auto", False, True, ["pid_thread"]])
def test_isolate_auto_gives_a_process_to_the_plugins_that_prefer_one(tmp_path, isolate):
    plugins = resolve([WritesItsPid(tmp_path / "thread"), PrefersItsOwnProcess(tmp_path / "process")])
    settings = parse_settings([p.name for p in plugins], isolate=isolate)
    d = Dispatcher(plugins, settings.delivery, transport_for=transport_for(isolated_names(settings, plugins)))
    d.start()
    HookEmitter(d.submit).trial_result(TRIAL, 1, {"x": 1.0}, 0.0)
    assert d.close(60) == {"pid_thread": True, "pid_process": True}
    in_driver = {
        name: (tmp_path / name.split("_")[1]).read_text().split() == [str(os.getpid())]
        for name in ("pid_thread", "pid_process")
    }
    expected = {
        "auto": {"pid_thread": True, "pid_process": False},
        False: {"pid_thread": True, "pid_process": True},
        True: {"pid_thread": False, "pid_process": False},
    }.get(isolate if not isinstance(isolate, list) else "list", {"pid_thread": False, "pid_process": True})
    assert in_driver == expected


def test_the_mlflow_plugin_alone_of_the_built_in_three_prefers_a_process_of_its_own():
    plugins = resolve(["mlflow", "tensorboard", "wandb"])
    assert isolated_names(parse_settings([p.name for p in plugins]), plugins) == ("mlflow",)
    assert isolated_names(parse_settings([p.name for p in plugins], isolate=False), plugins) == ()
