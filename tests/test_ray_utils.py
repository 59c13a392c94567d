"""``init_ray`` keeps a local Ray on loopback even when ``ray`` was imported first (a fresh process each)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

# Imports ray BEFORE lrm_dist (as `lrm-dist train` and the jobs do through their imports), starts the
# local Ray the stages start, and reports the addresses the node advertises and listens on.
_PROBE = r"""
import json, psutil, ray
from lrm_dist.ray_utils import RayConfig, init_ray
init_ray(RayConfig(num_cpus=1))

@ray.remote
def where():
    return ray.util.get_node_ip_address()

me = psutil.Process()
pids = {p.pid for p in me.children(recursive=True)} | {me.pid}
listen = sorted({c.laddr.ip for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in pids})
print(json.dumps({"driver": ray.util.get_node_ip_address(), "task": ray.get(where.remote()),
                  "nodes": [n["NodeManagerAddress"] for n in ray.nodes()], "listen": listen}))
ray.shutdown()
"""


def test_local_ray_advertises_and_listens_on_loopback_only():
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_NODE_IP_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["driver"] == seen["task"] == "127.0.0.1"
    assert seen["nodes"] == ["127.0.0.1"]
    assert seen["listen"] and set(seen["listen"]) <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, seen["listen"]


_LEVEL_PROBE = r"""
import json, logging, os, ray
from lrm_dist.ray_utils import RayConfig, init_ray
init_ray(RayConfig(num_cpus=1))
import ray.data

@ray.remote
def levels():
    # Ray Train's report logger is named by its file's path, not its module
    report = os.path.join(os.path.dirname(ray.__file__), "train", "v2", "_internal", "execution", "context.py")
    names = ("ray.train.v2._internal.execution.controller.placement_group_cleaner", report)
    return [logging.getLogger(name).level for name in names]

assert ray.data.range(8).map_batches(lambda batch: batch).count() == 8
print(json.dumps({"worker": ray.get(levels.remote()), "ray_data": logging.getLogger("ray.data").getEffectiveLevel()}))
ray.shutdown()
"""


@pytest.mark.parametrize("verbose", ["0", "1"])
def test_local_ray_keeps_known_chatter_off_the_console_unless_verbose(verbose):
    """Workers silence Ray's known-harmless warnings and Ray Train's per-report line; the driver prints neither
    Ray's start-up INFO nor Ray Data's executor and progress lines (``lrm-dist --verbose`` keeps them all)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_DATA_LOG_LEVEL"}
    env["LRM_DIST_VERBOSE"] = verbose
    done = subprocess.run([sys.executable, "-c", _LEVEL_PROBE], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    chatter = ("Started a local Ray instance", "Starting execution of Dataset")
    if verbose == "0":
        assert seen == {"worker": [logging.ERROR, logging.WARNING], "ray_data": logging.WARNING}
        assert not any(line in done.stderr for line in chatter), done.stderr[-2000:]
    else:
        assert seen["worker"] == [logging.NOTSET, logging.NOTSET] and seen["ray_data"] <= logging.INFO
        assert all(line in done.stderr for line in chatter), done.stderr[-2000:]
