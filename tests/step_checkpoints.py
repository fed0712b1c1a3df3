"""Checkpoints that remember a step, for test trainables that resume (retry, restore, PBT exploit).

Imported inside Ray's worker processes too (tests/ is on their PYTHONPATH, see conftest.py).
"""

from __future__ import annotations

import os
import tempfile

from ray import tune


def step_checkpoint(step: int) -> tune.Checkpoint:
    """A checkpoint directory holding ``step``."""
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "step"), "w") as f:
        f.write(str(step))
    return tune.Checkpoint.from_directory(d)


def first_step() -> int:
    """The step a trainable starts at: 1, or one past the step of the checkpoint Tune restored it from."""
    checkpoint = tune.get_checkpoint()
    if not checkpoint:
        return 1
    with checkpoint.as_directory() as d:
        with open(os.path.join(d, "step")) as f:
            return int(f.read()) + 1
