"""TrackBridge's TensorBoard plugin: one tensorboardX run per Tune trial (see docs/tensorboard.md).

``SuppressTuneTBXLogger`` is loaded on first access only, because it imports Ray.
"""

from __future__ import annotations

from typing import Any

from trackbridge_tensorboard.plugin import TensorBoardPlugin

__all__ = ["SuppressTuneTBXLogger", "TensorBoardPlugin"]


def __getattr__(name: str) -> Any:
    if name == "SuppressTuneTBXLogger":
        from trackbridge_tensorboard.tune_logger import SuppressTuneTBXLogger

        return SuppressTuneTBXLogger
    raise AttributeError(f"module 'trackbridge_tensorboard' has no attribute {name!r}")
