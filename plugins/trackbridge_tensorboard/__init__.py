"""TrackBridge's TensorBoard plugin (work in progress)."""
from trackbridge_tensorboard.plugin import TensorBoardPlugin

__all__ = ["TensorBoardPlugin"]
