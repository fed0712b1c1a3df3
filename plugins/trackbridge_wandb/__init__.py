"""TrackBridge's W&B plugin (work in progress)."""
from trackbridge_wandb.plugin import WandbPlugin

__all__ = ["WandbPlugin"]
