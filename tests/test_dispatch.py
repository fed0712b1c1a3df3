"""The per-plugin queues and workers, driven without Ray."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from trackbridge import hookimpl
from trackbridge.delivery import Dispatcher
from trackbridge.emitter import HookEmitter
from trackbridge.events import ExperimentInfo, TrialInfo, TrialStatus
from trackbridge.loading import resolve
from trackbridge.testing import RecordingPlugin, drive, scripted_trial
from trackbridge.transport import DeliveryOptions, HookCall


def _trial(tid: str) -> TrialInfo:
    return TrialInfo(trial_id=tid, trial_name=f"t_{tid}", experiment_name="e")


def _dispatcher(plugins: list, **options) -> tuple[Dispatcher, HookEmitter]:
    options.setdefault("flush_interval", 0.0)
    d = Dispatcher(resolve(plugins), DeliveryOptions(**options))
    return d, HookEmitter(d.submit)


def test_a_misspelt_hook_name_is_an_error_not_a_silent_no_op():
    with pytest.raises(ValueError, match="trackbridge_trial_resutl"):
        HookCall("trackbridge_trial_resutl", {"trial": _trial("a"), "step": 1, "metrics": {}, "timestamp": 0.0})
    d, _ = _dispatcher([RecordingPlugin()])
    with pytest.raises(ValueError):
        d.submit(HookCall("trackbridge_flsh", {}))


def test_the_emitter_has_one_method_per_hook_with_the_specs_arguments():
    import inspect

    from trackbridge import hookspecs

    for hook in hookspecs.ALL_HOOKS:
        method = getattr(HookEmitter, hook.removeprefix("trackbridge_"), None)
        if hook == "trackbridge_flush":  # the workers flush; nobody emits it
            assert method is None
            continue
        spec = list(inspect.signature(getattr(hookspecs, hook)).parameters)
        assert list(inspect.signature(method).parameters)[1:] == spec, hook


def test_drive_delivers_in_order_on_one_worker_thread_with_flush_before_complete():
    rec = RecordingPlugin()
    stats = drive(rec, [scripted_trial("a", results=[{"x": 1}, {"x": 2}], checkpoints={2: "/tmp/c"})])
    kinds = [e[0] for e in rec.events]
    assert kinds[:3] == ["setup", "experiment_start", "trial_start"]
    assert [e for e in rec.events if e[0] == "result"] == [("result", "a", 1, {"x": 1}), ("result", "a", 2, {"x": 2})]
    assert kinds.index("checkpoint") > kinds.index("result")
    assert kinds[-3:] == ["flush", "complete", "experiment_end"]
    # a flush always comes between the last result and the completion
    last_result = max(i for i, k in enumerate(kinds) if k == "result")
    assert "flush" in kinds[last_result : kinds.index("complete")]
    assert rec.thread_names == {"trackbridge-recorder"}
    assert stats.delivered == 8 and stats.failed == 0


def test_events_of_each_trial_stay_in_order_across_interleaving():
    rec = RecordingPlugin()
    d, emit = _dispatcher([rec])
    d.start()
    trials = [_trial(str(i)) for i in range(3)]
    for t in trials:
        emit.trial_start(t, False, None)
    for step in range(1, 51):
        for t in trials:
            emit.trial_result(t, step, {"s": step}, 0.0)
    for t in trials:
        emit.trial_complete(t, TrialStatus.COMPLETED, None)
    d.close(30)
    for events in rec.by_trial().values():
        assert [e[0] for e in events] == ["trial_start"] + ["result"] * 50 + ["complete"]
        assert [e[2] for e in events if e[0] == "result"] == list(range(1, 51))


class Flaky:
    name = "flaky"

    def __init__(self):
        self.results = []

    @hookimpl
    def trackbridge_trial_result(self, trial, step):
        if step % 2 == 0:
            raise RuntimeError(f"tracker said no at {step}")
        self.results.append(step)


def test_a_raising_plugin_is_isolated_logged_once_per_hook_and_trial_and_counted(caplog):
    flaky, rec = Flaky(), RecordingPlugin()
    d, emit = _dispatcher([flaky, rec])
    d.start()
    for tid in ("a", "b"):
        t = _trial(tid)
        for step in range(1, 11):
            emit.trial_result(t, step, {}, 0.0)
    with caplog.at_level(logging.ERROR, logger="trackbridge"):
        d.close(30)
    stats = {s.plugin: s for s in d.stats()}
    assert stats["flaky"].failed == 10 and stats["flaky"].delivered == 10
    assert stats["recorder"].delivered == 20 and stats["recorder"].failed == 0
    assert flaky.results == [1, 3, 5, 7, 9] * 2
    errors = [r.getMessage() for r in caplog.records if "failed in" in r.getMessage()]
    assert errors == [
        "trackbridge: plugin 'flaky' failed in trackbridge_trial_result for trial a: RuntimeError: tracker said no at 2",
        "trackbridge: plugin 'flaky' failed in trackbridge_trial_result for trial b: RuntimeError: tracker said no at 2",
    ]


def test_flush_when_the_queue_runs_dry_batches_results():
    class Batcher:
        name = "batcher"

        def __init__(self):
            self.buffer, self.batches = [], []
            self.gate = threading.Event()

        @hookimpl
        def trackbridge_trial_result(self, step):
            self.gate.wait(5)
            self.buffer.append(step)

        @hookimpl
        def trackbridge_flush(self):
            if self.buffer:
                self.batches.append(self.buffer)
                self.buffer = []

    b = Batcher()
    d, emit = _dispatcher([b])
    d.start()
    t = _trial("a")
    for step in range(1, 101):
        emit.trial_result(t, step, {}, 0.0)
    b.gate.set()  # the worker was held on the first result while 99 more queued up
    time.sleep(0.5)
    assert [s for batch in b.batches for s in batch] == list(range(1, 101))
    assert len(b.batches) <= 3, b.batches  # not one flush per result
    d.close(10)


def test_full_queue_applies_backpressure_without_dropping():
    rec = RecordingPlugin(sleep=0.01)
    d, emit = _dispatcher([rec], queue_size=5)
    d.start()
    t = _trial("a")
    started = time.monotonic()
    for step in range(1, 41):
        emit.trial_result(t, step, {}, 0.0)
    waited = time.monotonic() - started
    d.close(30)
    assert [e[2] for e in rec.events if e[0] == "result"] == list(range(1, 41))
    assert waited > 0.2  # the producer had to wait for the slow plugin: nothing was dropped to go faster


def test_hung_plugin_is_declared_stuck_and_its_missed_events_are_counted():
    release = threading.Event()

    class Hangs:
        name = "hangs"

        @hookimpl
        def trackbridge_trial_result(self, step):
            release.wait(30)

    rec = RecordingPlugin()
    d, emit = _dispatcher([Hangs(), rec], queue_size=2, stuck_timeout=0.3)
    d.start()
    t = _trial("a")
    started = time.monotonic()
    for step in range(1, 21):
        emit.trial_result(t, step, {}, 0.0)
    elapsed = time.monotonic() - started
    release.set()
    d.close(10)
    stats = {s.plugin: s for s in d.stats()}
    assert elapsed < 5
    assert "stuck" in stats["hangs"].disabled_reason
    assert stats["hangs"].delivered + stats["hangs"].dropped + stats["hangs"].failed == 20
    assert stats["hangs"].dropped >= 15
    assert stats["recorder"].delivered == 20


def test_drain_timeout_counts_undelivered_events():
    rec = RecordingPlugin(sleep=0.2)
    d, emit = _dispatcher([rec])
    d.start()
    t = _trial("a")
    for step in range(1, 31):
        emit.trial_result(t, step, {}, 0.0)
    finished = d.close(0.5)
    [stats] = d.stats()
    assert finished == {"recorder": False}
    assert stats.dropped > 0 and stats.delivered + stats.dropped >= 29


def test_experiment_end_is_the_last_call():
    rec = RecordingPlugin()
    drive(rec, [scripted_trial("a", results=[{"x": 1}])], experiment=ExperimentInfo(name="e"))
    assert rec.events[-1] == ("experiment_end", "e")


def test_transient_errors_are_retried_with_backoff_then_delivered():
    from trackbridge import TransientError

    class BrieflyDown:
        name = "briefly_down"
        retry_on = (ConnectionError,)

        def __init__(self):
            self.calls, self.stored = 0, []

        @hookimpl
        def trackbridge_trial_result(self, step):
            self.calls += 1
            if self.calls in (1, 2):
                raise ConnectionError("server gone")
            if self.calls == 3:
                raise TransientError("503")
            self.stored.append(step)

    plugin = BrieflyDown()
    d, emit = _dispatcher([plugin], retry_backoff=0.01, max_retries=3)
    d.start()
    t = _trial("a")
    for step in (1, 2):
        emit.trial_result(t, step, {}, 0.0)
    d.close(10)
    [stats] = d.stats()
    assert plugin.stored == [1, 2]
    assert (stats.retried, stats.failed, stats.delivered) == (3, 0, 2)


def test_non_transient_errors_are_not_retried_and_repeated_failures_disable_the_plugin(caplog):
    class AlwaysBroken:
        name = "broken"
        retry_on = (ConnectionError,)

        def __init__(self):
            self.calls = 0

        @hookimpl
        def trackbridge_trial_result(self, step):
            self.calls += 1
            raise ValueError("bad request")

    plugin = AlwaysBroken()
    d, emit = _dispatcher([plugin], max_consecutive_failures=5)
    d.start()
    t = _trial("a")
    with caplog.at_level(logging.ERROR, logger="trackbridge"):
        for step in range(1, 21):
            emit.trial_result(t, step, {}, 0.0)
        d.close(10)
    [stats] = d.stats()
    assert plugin.calls == 5 and stats.retried == 0
    assert stats.failed == 5 and stats.dropped == 15
    assert "5 consecutive failures" in stats.disabled_reason
    assert any("disabled for the rest of this run" in r.getMessage() for r in caplog.records)


def test_every_hook_name_written_in_the_core_is_in_the_specification():
    import re
    from pathlib import Path

    from trackbridge import hookspecs

    core = Path(__file__).resolve().parents[1] / "trackbridge"
    written = {
        (path.name, name)
        for path in core.rglob("*.py")
        for name in re.findall(r"\btrackbridge_(?:setup|flush|experiment_\w+|trial_\w+)\b", path.read_text())
    }
    assert len(written) > 20, "the scan found too little: it is not looking where the core is"
    unknown = sorted((file, name) for file, name in written if name not in hookspecs.ALL_HOOKS)
    assert unknown == []
