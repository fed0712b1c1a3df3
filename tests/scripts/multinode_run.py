"""A Tune run on a real two-node Ray cluster (``ray.cluster_utils.Cluster``, both nodes on this machine).

    python multinode_run.py OUT_DIR PLUGIN_OPTIONS_JSON

Each trial reports the id of the node it runs on, writes a checkpoint there, and logs from inside the trial
(``trackbridge.log`` twice per result, at steps of its own, and one file). The driver's plugins track
everything; a JSON summary (the node of each trial, the callback's delivery report) is written to
``OUT_DIR/summary.json`` for the parent test, which then reads back what the trackers stored.
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from trackbridge import TrackBridgeCallback  # noqa: E402


def trainable(config):
    import time

    import trackbridge

    node = ray.get_runtime_context().get_node_id()
    for step in range(1, 7):
        time.sleep(0.3)  # keep both trials alive together so they land on different nodes
        for inner in (2 * step - 1, 2 * step):
            trackbridge.log({"inner": {"loss": 1.0 / inner}}, step=inner)
        checkpoint = None
        if step % 3 == 0:
            d = tempfile.mkdtemp()
            with open(os.path.join(d, "weights.bin"), "wb") as f:
                f.write(os.urandom(64))
            with open(os.path.join(d, "node.txt"), "w") as f:
                f.write(node)
            checkpoint = tune.Checkpoint.from_directory(d)
        tune.report({"loss": 1.0 / step, "node": node}, checkpoint=checkpoint)
    note = os.path.join(tempfile.mkdtemp(), "node.txt")
    with open(note, "w") as f:
        f.write(node)
    trackbridge.log_artifact(note, name="where.txt")


if __name__ == "__main__":
    out_dir, plugin_options = sys.argv[1], json.loads(sys.argv[2])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    callback = TrackBridgeCallback(plugins=plugin_options)
    grid = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1, 2])},
        tune_config=tune.TuneConfig(max_concurrent_trials=2),
        run_config=tune.RunConfig(
            name="multinode", storage_path=os.path.join(out_dir, "ray"), callbacks=[callback], verbose=0
        ),
    ).fit()
    summary = {
        "cluster_nodes": nodes,
        "trials": {
            r.metrics["trial_id"]: {"node": r.metrics["node"], "iterations": r.metrics["training_iteration"]}
            for r in grid
        },
        "errors": grid.num_errors,
        "report": callback.report,
    }
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, default=str)
    ray.shutdown()
    cluster.shutdown()
