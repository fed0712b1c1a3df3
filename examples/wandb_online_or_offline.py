"""W&B online or offline, chosen by the environment, with no change to the code.

The W&B plugin passes no ``mode`` unless you give one (the ``mode`` option), so the environment decides, as
for W&B itself: ``WANDB_MODE`` (``online``, ``offline``, ``disabled``), else online, which needs a login
(``wandb login``, ``WANDB_API_KEY``, or the plugin's ``api_key`` / ``api_key_file`` options). Offline runs are
written under ``dir`` (``./wandb/offline-run-*``) and uploaded later with ``wandb sync``. The API key never
reaches a trial's config, ``tuner.pkl`` or a tracker (see docs/wandb.md).

    WANDB_MODE=offline python examples/wandb_online_or_offline.py    # on a laptop on a plane
    WANDB_API_KEY=... python examples/wandb_online_or_offline.py     # on the cluster
"""

from __future__ import annotations

import argparse
import os

from ray import tune

from trackbridge import TrackBridgeCallback


def train(config: dict) -> None:
    for step in range(1, 6):
        tune.report({"loss": config["lr"] / step})


def main(storage_path: str, project: str = "trackbridge-examples") -> tune.ResultGrid:
    bridge = TrackBridgeCallback(plugins={"wandb": {"project": project, "dir": os.getcwd()}})
    print(f"W&B mode: {os.environ.get('WANDB_MODE') or 'online (WANDB_MODE is not set)'}")
    tuner = tune.Tuner(
        train,
        param_space={"lr": tune.grid_search([0.1, 0.01])},
        run_config=tune.RunConfig(name="wandb-modes", storage_path=storage_path, callbacks=[bridge]),
    )
    return tuner.fit()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", default="trackbridge-examples")
    parser.add_argument("--storage-path", default=os.path.abspath("ray_results"))
    args = parser.parse_args()
    main(args.storage_path, args.project)
    if os.environ.get("WANDB_MODE") == "offline":
        print("upload later with: wandb sync wandb/offline-run-*")
