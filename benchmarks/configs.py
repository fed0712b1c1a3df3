"""The configurations the benchmark compares, each built fresh inside its own child process.

Every configuration writes into its own, new directory ``root`` (fresh SQLite file, fresh W&B directory,
fresh Tune storage): a fresh store is part of what is measured, because that is what a user's first run
pays. Each Tune callback is wrapped (subclassed, never edited) so that the time Tune's thread spends inside
its ``on_trial_result`` is recorded per result with ``time.perf_counter_ns``.

Baselines: ``none`` passes no callback to Tune at all (its driver loads no tracker SDK); ``none-callback``
passes one do-nothing ``ray.tune.Callback`` subclass, timed like the others. With any callback, Ray's usage
telemetry (``ray.air._internal.usage._count_callbacks``) imports Ray's MLflow, W&B, Comet and Aim
integrations, and with them ``mlflow`` and ``wandb``, into the driver: time ratios are against ``none``, driver
memory ratios against ``none-callback``.

Imports of Ray, the trackers and TrackBridge are done inside ``build`` so that importing this module (the
parent does, for the list of names) costs nothing.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

from trackbridge import hookimpl


@dataclass(frozen=True)
class Config:
    name: str
    #: What the row means, for the table.
    label: str
    #: Trackers whose stores are read back after the run: subset of {"wandb", "mlflow", "tensorboard", "aim",
    #: "comet"}.
    trackers: tuple[str, ...]
    #: "native" (Ray's callbacks), "trackbridge", "callback" (the do-nothing Tune callback) or "none".
    kind: str


CONFIGS: dict[str, Config] = {
    c.name: c
    for c in [
        Config("none", "no tracking", (), "none"),
        Config("none-callback", "no tracking, do-nothing Tune callback", (), "callback"),
        Config("native-wandb", "Ray WandbLoggerCallback", ("wandb",), "native"),
        Config("native-mlflow", "Ray MLflowLoggerCallback", ("mlflow",), "native"),
        Config("native-tbx", "Ray TBXLoggerCallback", ("tensorboard",), "native"),
        Config("native-all", "Ray's three callbacks", ("wandb", "mlflow", "tensorboard"), "native"),
        Config("tb-noop", "TrackBridge, do-nothing plugin", (), "trackbridge"),
        Config("tb-wandb", "TrackBridge wandb", ("wandb",), "trackbridge"),
        Config("tb-mlflow", "TrackBridge mlflow", ("mlflow",), "trackbridge"),
        Config("tb-tensorboard", "TrackBridge tensorboard", ("tensorboard",), "trackbridge"),
        Config("tb-all", "TrackBridge, all three", ("wandb", "mlflow", "tensorboard"), "trackbridge"),
        Config(
            "tb-all-isolated", "TrackBridge, all three, isolate=True", ("wandb", "mlflow", "tensorboard"), "trackbridge"
        ),
        Config(
            "tb-all-threads",
            "TrackBridge, all three, isolate=False",
            ("wandb", "mlflow", "tensorboard"),
            "trackbridge",
        ),
        Config("native-aim", "Ray AimLoggerCallback", ("aim",), "native"),
        Config("tb-aim", "TrackBridge aim", ("aim",), "trackbridge"),
        Config("native-comet", "Ray CometLoggerCallback, offline", ("comet",), "native"),
        Config("tb-comet", "TrackBridge comet, offline", ("comet",), "trackbridge"),
    ]
}

#: The Aim and Comet comparison (``--aim-comet``): the baseline, Ray's callback and TrackBridge's plugin for each.
AIM_COMET_CONFIGS: tuple[str, ...] = ("none", "native-aim", "tb-aim", "native-comet", "tb-comet")
#: The default comparison (``tb-noop`` is the bridge-alone measurement): every configuration but the Aim and
#: Comet ones (``--aim-comet`` runs those; the default run stays at its length).
DEFAULT_CONFIGS: tuple[str, ...] = tuple(n for n in CONFIGS if n not in AIM_COMET_CONFIGS or n == "none")
#: The in-trial case's default configurations (``--in-trial-logs``): the baseline, the bridge with a
#: do-nothing plugin, each tracker alone and all three.
IN_TRIAL_CONFIGS: tuple[str, ...] = ("none", "tb-noop", "tb-wandb", "tb-mlflow", "tb-tensorboard", "tb-all")
#: The scale sweep's default configurations (Ray's callbacks would take tens of minutes at the top sizes).
SWEEP_CONFIGS: tuple[str, ...] = ("none", "none-callback", "tb-noop", "tb-all")
#: The goal run at the large size (16 x 2000 by default), besides the optimized direct-write floor.
LARGE_CONFIGS: tuple[str, ...] = ("none", "none-callback", "tb-all")


class NoopPlugin:
    """A TrackBridge plugin whose hooks do nothing: measures the bridge itself. Its in-trial hook only counts
    the calls and values it received (the in-trial case's check that every value crossed the bridge)."""

    name = "noop"

    def __init__(self) -> None:
        self.trial_log_calls = 0
        #: trial id -> values received
        self.trial_log_values: dict[str, int] = {}

    @hookimpl
    def trackbridge_trial_result(self) -> None:
        return None

    @hookimpl
    def trackbridge_trial_log(self, trial: Any, values: Any) -> None:
        self.trial_log_calls += 1  # one plugin worker thread calls this hook: no lock needed
        self.trial_log_values[trial.trial_id] = self.trial_log_values.get(trial.trial_id, 0) + len(values)


def noop_plugin(callback: Any) -> NoopPlugin | None:
    """The ``NoopPlugin`` of a ``tb-noop`` callback (after ``fit()``), else None."""
    try:
        plugin = callback.get_plugin("noop")
    except Exception:
        return None
    return plugin if isinstance(plugin, NoopPlugin) else None


class _TimedResults:
    """Mixin: records how long each ``on_trial_result`` call keeps Tune's thread (nanoseconds); also each
    ``on_trial_complete`` (TrackBridge waits there for a trial's in-trial values) and ``on_step_end``
    (TrackBridge hands in-trial values to the plugins there, once per loop turn)."""

    bench_result_ns: list[int]
    bench_complete_ns: list[int]
    bench_step_end_ns: list[int]

    def _bench_record(self, attr: str, started: int) -> None:
        elapsed = time.perf_counter_ns() - started
        try:
            getattr(self, attr).append(elapsed)
        except AttributeError:
            setattr(self, attr, [elapsed])

    def on_trial_result(self, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter_ns()
        try:
            super().on_trial_result(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._bench_record("bench_result_ns", started)

    def on_trial_complete(self, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter_ns()
        try:
            super().on_trial_complete(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._bench_record("bench_complete_ns", started)

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter_ns()
        try:
            super().on_step_end(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._bench_record("bench_step_end_ns", started)


def _timed_noop_callback() -> type:
    """A ``ray.tune.Callback`` subclass with no behaviour of its own, timed like the others (module level, as
    ``_timed``); builds nothing else, so the driver imports only what Tune itself imports."""
    from ray.tune import Callback

    g = globals()
    if "TimedNoopCallback" not in g:
        g["TimedNoopCallback"] = type("TimedNoopCallback", (_TimedResults, Callback), {"__module__": __name__})
    return g["TimedNoopCallback"]


#: Timed class name -> (module, class) it subclasses. Each is imported only when a configuration uses it: what
#: a user's script imports before ``fit()`` (``from trackbridge import TrackBridgeCallback`` imports none of
#: Ray's integrations, so the telemetry import of them stays inside a TrackBridge run's ``fit()``, as for a user).
_TIMED_BASES: dict[str, tuple[str, str]] = {
    "TimedTrackBridge": ("trackbridge", "TrackBridgeCallback"),
    "TimedWandb": ("ray.air.integrations.wandb", "WandbLoggerCallback"),
    "TimedMLflow": ("ray.air.integrations.mlflow", "MLflowLoggerCallback"),
    "TimedTBX": ("ray.tune.logger", "TBXLoggerCallback"),
    "TimedAim": ("ray.tune.logger.aim", "AimLoggerCallback"),  # imports aim
    "TimedComet": ("ray.air.integrations.comet", "CometLoggerCallback"),  # imports comet_ml when built
}


def _timed(name: str) -> type:
    """The module-level timed subclass ``name`` (Tune pickles callbacks into tuner.pkl: it must be importable)."""
    import importlib

    g = globals()
    if name not in g:
        module, cls = _TIMED_BASES[name]
        base = getattr(importlib.import_module(module), cls)
        g[name] = type(name, (_TimedResults, base), {"__module__": __name__})
    return g[name]  # type: ignore[no-any-return]


def callback_numbers(callbacks: list[Any]) -> dict[str, Any]:
    """After ``fit()``: what the timed callbacks recorded (Tune's thread per result, at trials' ends, in
    ``on_step_end``), TrackBridge's delivery report and the do-nothing plugin's counts, for the child's JSON."""
    out: dict[str, Any] = {}
    # Per result, the time Tune's thread spent in all of this configuration's callbacks together.
    per_callback = [list(getattr(cb, "bench_result_ns", []) or []) for cb in callbacks]
    per_callback = [calls for calls in per_callback if calls]
    stalls: list[int] = sorted(sum(t) for t in zip(*per_callback, strict=False)) if per_callback else []
    for cb in callbacks:
        report = getattr(cb, "report", None)
        if isinstance(report, dict):
            out["trackbridge_report"] = {
                "drain_seconds": report.get("drain_seconds"),
                "late_trial_logs": report.get("late_trial_logs"),
                "plugins": report.get("plugins"),
            }
        noop = noop_plugin(cb)
        if noop is not None:
            out["noop_trial_log_calls"] = noop.trial_log_calls
            out["noop_trial_log_values"] = noop.trial_log_values
    # Tune's thread at each trial's end (TrackBridge waits there for the trial's in-trial values).
    per_end = [list(getattr(cb, "bench_complete_ns", []) or []) for cb in callbacks]
    ends = sorted(sum(t) for t in zip(*[e for e in per_end if e], strict=False)) if any(per_end) else []
    if ends:
        out["trial_end_ms_median"] = statistics.median(ends) / 1e6
        out["trial_end_ms_max"] = ends[-1] / 1e6
    steps = [t for cb in callbacks for t in getattr(cb, "bench_step_end_ns", [])]
    if steps:
        out["step_end_ms_total"] = sum(steps) / 1e6
    out["callback_calls"] = len(stalls)
    if stalls:
        out["stall_ms_median"] = statistics.median(stalls) / 1e6
        out["stall_ms_p99"] = stalls[min(len(stalls) - 1, int(0.99 * len(stalls)))] / 1e6
        out["stall_ms_max"] = stalls[-1] / 1e6
        out["stall_ms_total"] = sum(stalls) / 1e6
    return out


def wandb_dir(root: str) -> str:
    return os.path.join(root, "wandb")


def mlflow_uri(root: str) -> str:
    return f"sqlite:///{os.path.join(root, 'mlflow.db')}"


def tune_dir(root: str) -> str:
    return os.path.join(root, "tune")


def aim_repo(root: str) -> str:
    """The Aim repo (its runs go to ``<repo>/.aim``), fresh for every run."""
    return os.path.join(root, "aim")


def comet_dir(root: str) -> str:
    """Where Comet's offline archives go (one zip per experiment, written at its ``end()``)."""
    return os.path.join(root, "comet")


def trackbridge_options(root: str) -> dict[str, dict[str, Any]]:
    """The plugin options the benchmark uses (W&B offline, MLflow on a fresh SQLite file, Aim on a fresh repo,
    Comet offline archives in a fresh directory)."""
    return {
        "wandb": {"mode": "offline", "dir": wandb_dir(root), "project": "bench"},
        "mlflow": {"tracking_uri": mlflow_uri(root)},
        "tensorboard": {},  # each trial's directory in Tune's storage
        "aim": {"repo": aim_repo(root)},
        "comet": {"mode": "offline", "offline_directory": comet_dir(root)},
    }


def _isolation(name: str) -> dict[str, Any]:
    """The ``isolate=`` a TrackBridge configuration passes (none: the callback's default)."""
    if name.endswith("-isolated"):
        return {"isolate": True}
    if name.endswith("-threads"):
        return {"isolate": False}
    return {}


def build(name: str, root: str) -> list[Any]:
    """The Tune callbacks of configuration ``name``, writing under ``root``."""
    config = CONFIGS[name]
    os.makedirs(wandb_dir(root), exist_ok=True)
    if config.kind == "none":
        return []  # nothing imported: the baseline driver loads no tracker SDK
    if config.kind == "callback":
        return [_timed_noop_callback()()]
    if name == "tb-noop":
        return [_timed("TimedTrackBridge")(plugins=[NoopPlugin()])]
    if config.kind == "trackbridge":
        options = trackbridge_options(root)
        return [_timed("TimedTrackBridge")(plugins={t: options[t] for t in config.trackers}, **_isolation(name))]
    callbacks: list[Any] = []
    if "wandb" in config.trackers:
        callbacks.append(_timed("TimedWandb")(project="bench", mode="offline", dir=wandb_dir(root)))
    if "mlflow" in config.trackers:
        # Without an experiment name Ray's callback fails on a fresh store (no experiment id); TrackBridge
        # uses the Tune experiment's name, which is also "bench".
        callbacks.append(_timed("TimedMLflow")(tracking_uri=mlflow_uri(root), experiment_name="bench"))
    if "tensorboard" in config.trackers:
        callbacks.append(_timed("TimedTBX")())
    if "aim" in config.trackers:
        # Ray's defaults otherwise (Aim's system tracking and terminal capture on, runs not indexed).
        callbacks.append(_timed("TimedAim")(repo=aim_repo(root)))
    if "comet" in config.trackers:
        # An OfflineExperiment per trial (``online=False``); the other keywords go to its constructor. Ray turns
        # off Comet's output capture, git and CPU/GPU logging; the rest of Comet's defaults stay.
        os.makedirs(comet_dir(root), exist_ok=True)
        callbacks.append(_timed("TimedComet")(online=False, offline_directory=comet_dir(root)))
    return callbacks
