"""Connecting to Ray, in one place: a running cluster (``address``) or a local one pinned to loopback."""

from __future__ import annotations

import logging
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lrm_dist.log import get_logger, quiet_ray_driver, quiet_worker_lines, verbose

log = get_logger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class RayConfig(BaseModel):
    """How jobs reach Ray. ``address=None`` joins RAY_ADDRESS when set, else starts a local Ray."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, description="'auto', 'ray://host:10001', or None for local/RAY_ADDRESS.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a locally started Ray (None: all).")
    num_gpus: int | None = Field(None, ge=0)
    node_ip: str = Field("127.0.0.1", description="IP a local Ray advertises; loopback keeps tests local.")
    namespace: str = "lrm-dist"


def pin_to_loopback() -> None:
    """Keep a local Ray on loopback, whenever ``ray`` was first imported.

    Ray (2.5x+) replaces a loopback node IP by the machine's network address unless its multi-node
    mode is off. The switch is read from the environment once, when ``ray`` is first imported, so an
    environment variable alone is too late in a process that imported ray earlier: set the module
    constant for this process and the variable for the processes Ray starts.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray._private.ray_constants as ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def init_ray(cfg: RayConfig | None = None, **runtime_env: Any) -> None:
    """Connect to (or start) Ray once per process; a no-op when already connected."""
    cfg = cfg or RayConfig()
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if not address and cfg.node_ip in _LOOPBACK:
        pin_to_loopback()
    import ray

    if ray.is_initialized():
        return
    quiet_ray_driver()
    kwargs: dict[str, Any] = {"namespace": cfg.namespace, "log_to_driver": True,
                              "logging_level": logging.INFO if verbose() else logging.WARNING}
    if not address:  # a local Ray's workers silence Ray's known-harmless repeated warnings (lrm_dist.log)
        runtime_env = {"worker_process_setup_hook": "lrm_dist.log.quiet_ray_internals", **runtime_env}
    from lrm_dist.storage import storage_env

    if storage_env():  # an object-store workdir's options (lrm_dist.storage.configure) reach every worker
        runtime_env = {**runtime_env, "env_vars": {**storage_env(), **runtime_env.get("env_vars", {})}}
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    if address:
        log.info("joining Ray cluster at %s", address)
        ray.init(address=address, **kwargs)
    else:
        # A local Ray advertises the machine's network address unless pinned; pin it to loopback.
        os.environ.setdefault("RAY_NODE_IP_ADDRESS", cfg.node_ip)
        log.info("starting a local Ray on %s", cfg.node_ip)
        ray.init(
            # "local": always a new Ray, never a `ray start` cluster that happens to run on this machine.
            address="local",
            num_cpus=cfg.num_cpus,
            num_gpus=cfg.num_gpus,
            _node_ip_address=cfg.node_ip,
            include_dashboard=False,
            **kwargs,
        )
    quiet_worker_lines()
