"""``SuppressTuneTBXLogger``: stop Ray Tune from adding its own TensorBoard logger (imports Ray).

Tune adds ``TBXLoggerCallback`` only when none of the user's callbacks is one (``isinstance`` check in
``ray.tune.utils.callback._create_default_callbacks``). This subclass fills that slot and does nothing, so
the TrackBridge plugin is the only TensorBoard writer while Tune's CSV and JSON loggers (which
``ResultGrid`` / ``Result.metrics_dataframe`` read back) stay on. ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``
would switch all three off.
"""

from __future__ import annotations

import weakref
from typing import Any

from ray.tune.logger import TBXLoggerCallback

from trackbridge_tensorboard import duplicates

#: Every suppressor alive in this process, set up or not (see ``live_suppressors``).
_live: weakref.WeakSet[SuppressTuneTBXLogger] = weakref.WeakSet()


def live_suppressors() -> int:
    """How many ``SuppressTuneTBXLogger`` objects exist in this process, set up or not.

    A plugin in a process of its own (``isolate=``) is started in ``TrackBridgeCallback.setup``, which
    Tune may call before the suppressor's own ``setup`` (``callbacks=[bridge, *bridge.companion_callbacks()]``
    lists it after the bridge). By then Tune has already chosen its callbacks, so a suppressor that exists is
    the one that keeps Tune's logger out. (A suppressor that exists but was not given to this ``fit()``
    silences the warning too: the price of deciding before the setup.)
    """
    return len(_live)


class SuppressTuneTBXLogger(TBXLoggerCallback):
    """Add to ``tune.RunConfig(callbacks=[...])`` next to ``TrackBridgeCallback(plugins=["tensorboard"])``."""

    _SAVED_FILE_TEMPLATES: list[str] = []

    def __new__(cls, *args: Any, **kwargs: Any) -> SuppressTuneTBXLogger:
        # Also runs when pickle rebuilds one (``Tuner.restore`` unpickles the run config's callbacks).
        self = super().__new__(cls)
        _live.add(self)
        return self

    def __init__(self) -> None:  # no tensorboardX writer, unlike the parent
        pass

    def setup(self, *args: Any, **kwargs: Any) -> None:
        duplicates.suppressor_started(id(self))

    def on_experiment_end(self, *args: Any, **kwargs: Any) -> None:
        duplicates.suppressor_ended(id(self))

    def log_trial_start(self, trial: Any) -> None:
        pass

    def log_trial_restore(self, trial: Any) -> None:
        pass

    def log_trial_save(self, trial: Any) -> None:
        pass

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        pass

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        pass

    def __repr__(self) -> str:
        return "SuppressTuneTBXLogger()"
