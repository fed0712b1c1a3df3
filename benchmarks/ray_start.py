"""Start the benchmark child's Ray: one local node, or a 2-node ``ray.cluster_utils.Cluster`` on this machine.

- ``start_ray(cpus)``: ``ray.init(address="local", num_cpus=cpus)``, no dashboard: ``cpus`` trials run at once.
- ``start_ray(cpus, cluster_cpus_per_node=N)``: a head node and one worker node, each a raylet of its own with
  ``N`` logical CPUs (the scale sweep's ``--cluster``): up to ``2 * N`` trials run at once, spread over two
  nodes, whatever the real cores (logical CPUs may exceed them). Ray's prestart of one idle worker per
  logical CPU when the driver connects is turned off (``RAY_prestart_worker_first_driver=0``): with 32
  logical CPUs on a small machine it would start 32 workers before the first trial; trials start theirs.

Both return the function that stops what they started, and the number of nodes.
"""

from __future__ import annotations

import os
from collections.abc import Callable

#: Nodes of the cluster mode: the head and one worker node.
CLUSTER_NODES = 2


def start_ray(cpus: int, cluster_cpus_per_node: int = 0) -> tuple[Callable[[], None], int]:
    """Start Ray for one benchmark run; returns (stop, number of nodes)."""
    import ray

    if not cluster_cpus_per_node:
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        return ray.shutdown, 1
    from ray.cluster_utils import Cluster

    os.environ["RAY_prestart_worker_first_driver"] = "0"  # read by each raylet at its start (see above)
    node = {"num_cpus": cluster_cpus_per_node, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=node)
    for _ in range(CLUSTER_NODES - 1):
        cluster.add_node(num_cpus=cluster_cpus_per_node)
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    cluster.wait_for_nodes()

    def stop() -> None:
        try:
            ray.shutdown()
        finally:
            cluster.shutdown()

    return stop, CLUSTER_NODES
