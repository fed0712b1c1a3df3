"""TrackBridge's Weights & Biases plugin: one W&B run per Ray Tune trial (see docs/wandb.md).

Registered as the entry point ``wandb`` in the group ``trackbridge``; wandb itself is imported only when the
plugin's hooks run, never when this package is imported.
"""

from trackbridge_wandb.plugin import WandbPlugin

__all__ = ["WandbPlugin"]
