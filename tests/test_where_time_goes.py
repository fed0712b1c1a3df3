"""``benchmarks.where_time_goes``: py-spy's raw stacks attributed to who spent the interpreter time, in which
phase, and whose code it was (the profile itself needs py-spy and a run; this checks the attribution on stacks
in py-spy's own raw format, nested processes included)."""

from __future__ import annotations

from benchmarks.where_time_goes import attribute

DRIVER = 'process 100:"python -m benchmarks.workload --config tb-all"'
CHILD = 'process 200:"/venv/bin/python -m trackbridge.process_transport 31"'
WORKER = 'process 300:"/venv/bin/python /venv/lib/python3.11/site-packages/ray/_private/workers/default_worker.py"'
RAYLET = 'process 250:"/venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet"'


def _line(*frames: str, samples: int = 1) -> str:
    return ";".join(frames) + f" {samples}"


def test_each_sample_goes_to_its_thread_phase_and_owner():
    lines = [
        _line(
            DRIVER,
            "thread (100): MainThread",
            "fit (ray/tune/tuner.py:1)",
            "step (ray/tune/execution/loop.py:2)",
            samples=7,
        ),
        _line(
            DRIVER,
            "thread (100): MainThread",
            "fit (ray/tune/tuner.py:1)",
            "TrackBridgeCallback.on_trial_result (trackbridge/callback.py:208)",
            samples=2,
        ),
        _line(
            DRIVER,
            "thread (101): trackbridge-wandb",
            "ThreadTransport._invoke (trackbridge/thread_transport.py:120)",
            "WandbPlugin.trackbridge_trial_start (trackbridge_wandb/plugin.py:137)",
            "init (wandb/sdk/wandb_init.py:1536)",
            "_find_and_load (<frozen importlib._bootstrap>:1176)",
            "<module> (wandb/sdk/launch/__init__.py:1)",
            samples=3,
        ),
        _line(
            DRIVER,
            "thread (102): trackbridge-tensorboard",
            "PluginWorker._deliver_until_stopped (trackbridge/delivery.py:192)",
            "ThreadTransport.deliver (trackbridge/thread_transport.py:73)",
            samples=4,
        ),
        _line(
            DRIVER,
            CHILD,
            "thread (201): trackbridge-mlflow",
            "MlflowPlugin.trackbridge_flush (trackbridge_mlflow/plugin.py:283)",
            "SqlAlchemyStore.log_batch (mlflow/store/tracking/sqlalchemy_store.py:2406)",
            "Session.flush (sqlalchemy/orm/session.py:4626)",
            samples=5,
        ),
        _line(
            DRIVER, CHILD, "thread (200): MainThread", "child_main (trackbridge/process_transport.py:230)", samples=1
        ),
        _line(DRIVER, RAYLET, WORKER, "thread (300): MainThread", "report (ray/tune/trainable.py:1)", samples=6),
        "not a stack line",
    ]
    counts = attribute(lines)
    assert counts[("Tune's loop (driver main thread)", "", "")] == 7
    assert counts[("TrackBridge on Tune's thread", "", "")] == 2
    assert counts[("plugin wandb (driver thread)", "trial start", "imports")] == 3
    assert counts[("plugin tensorboard (driver thread)", "bridge between calls", "TrackBridge")] == 4
    assert counts[("plugin mlflow (own process)", "steady state", "tracker SDK")] == 5
    assert counts[("plugin processes, receiving calls (main thread)", "bridge between calls", "TrackBridge")] == 1
    assert counts[("Ray worker processes (the trials, TrackBridge's in-trial inbox actor, idle workers)", "", "")] == 6
    assert sum(counts.values()) == 28
