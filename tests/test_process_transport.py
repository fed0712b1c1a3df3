"""An isolated plugin's process, driven without Ray: every call is accounted for when the drain times out,
when the process dies while idle, and when a value cannot be sent to it."""

from __future__ import annotations

import os
import threading
import time

from trackbridge import TrialInfo, hookimpl
from trackbridge.delivery import Dispatcher
from trackbridge.emitter import HookEmitter
from trackbridge.loading import resolve
from trackbridge.process_transport import transport_for
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
