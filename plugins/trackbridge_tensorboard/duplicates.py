"""Keep Ray Tune's own TensorBoard logger from doubling every scalar (Ray-free; see ``tune_logger``).

Tune adds a ``TBXLoggerCallback`` to every run when tensorboardX is installed, unless
``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1`` or the user's callbacks already hold a ``TBXLoggerCallback``. It
writes the same results (as ``ray/tune/<metric>``) and its own HParams record into each trial directory,
which is exactly where this plugin writes. A callback cannot remove another callback, so the plugin offers
``SuppressTuneTBXLogger`` (a do-nothing ``TBXLoggerCallback`` that keeps Tune's CSV/JSON loggers) and warns
when neither that nor the environment variable is in place.
"""

from __future__ import annotations

import os
import threading

ENV_VAR = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"

_lock = threading.Lock()
_active_suppressors: set[int] = set()


def suppressor_started(token: int) -> None:
    with _lock:
        _active_suppressors.add(token)


def suppressor_ended(token: int) -> None:
    with _lock:
        _active_suppressors.discard(token)


def tune_logger_probably_active() -> bool:
    """True when Tune most likely added its own TensorBoard logger to the running ``Tuner.fit()``.

    Tune decides when ``fit()`` starts, from the environment variable and the callbacks; by the time the
    plugin's ``experiment_start`` runs, every callback's ``setup`` has been called, so an active
    ``SuppressTuneTBXLogger`` has registered itself.
    """
    if os.environ.get(ENV_VAR, "0") == "1":
        return False
    with _lock:
        return not _active_suppressors


WARNING = (
    "Ray Tune's own TensorBoard logger (TBXLoggerCallback) is active and writes every result a second time "
    "(as ray/tune/<metric>) into the same trial directories, so TensorBoard would show each scalar twice. "
    "Add trackbridge_tensorboard.SuppressTuneTBXLogger() to RunConfig(callbacks=[...]), e.g. with "
    "callbacks=[bridge, *bridge.companion_callbacks()] (keeps Tune's CSV/JSON "
    "logs), or set TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1 (disables all of Tune's auto loggers), or give the "
    "plugin its own logdir= option."
)
