"""A real 3-node Ray cluster on loopback for the render stage's integration tests (one per session).

Head: 1 CPU, no render slot. Two worker nodes: 1 CPU and one ``blender`` slot each, so render actors
(which ask for ``blender: 1``) sit one per worker node and losing a node loses an actor.
"""

import os

import pytest

NODE_ARGS = {"num_cpus": 1, "resources": {"blender": 1}, "node_ip_address": "127.0.0.1"}


@pytest.fixture(scope="session")
def cluster():
    ray = pytest.importorskip("ray")
    import ray._private.ray_constants as ray_constants
    from ray.cluster_utils import Cluster

    os.environ["RAY_NODE_IP_ADDRESS"] = "127.0.0.1"
    if ray.is_initialized():
        ray.shutdown()
    # Without this Ray rewrites the loopback GCS address to the host's routable IP, where nothing listens.
    saved, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
        # find a lost node in ~5 s instead of ~15 s
        "_system_config": {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
                           "health_check_failure_threshold": 5},
    })
    for _ in range(2):
        c.add_node(**NODE_ARGS)
    c.wait_for_nodes()
    ray.init(address=c.address, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved


def render_actor_args() -> dict:
    """The ``render.actors`` section that places one actor per worker node of the test cluster."""
    return {"count": 2, "num_cpus": 1, "resources": {"blender": 1}, "recycle_after": 50, "start_timeout_s": 120}


def non_loopback_listeners() -> list[tuple[str, str, int]]:
    """Sockets that this process or its children (the cluster's processes) listen on outside loopback."""
    import psutil

    me = psutil.Process()
    pids = {p.pid for p in me.children(recursive=True)} | {me.pid}
    loopback = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
    out = []
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids and conn.laddr.ip not in loopback:
            out.append((psutil.Process(conn.pid).name(), conn.laddr.ip, conn.laddr.port))
    return out
