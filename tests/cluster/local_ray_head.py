"""A real local Ray head for tests: ``ray start --head`` on loopback with token auth, stopped by its own PIDs.

``ray stop`` would kill every Ray process on the machine, so the head is stopped by finding the processes
whose command line names its private temp dir (GCS, raylet, dashboard, monitors) plus all their
descendants (workers, agents, job drivers), and terminating exactly those.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class RayHead:
    """A running head: its addresses, token and the environment its processes (and the jobs) share."""

    root: Path
    gcs_port: int
    dashboard_port: int
    token: str
    env: dict[str, str]
    pids: set[int] = field(default_factory=set)

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def temp_dir(self) -> Path:
        return self.root / "ray"

    def own_processes(self) -> list[psutil.Process]:
        """Processes started for this head: command line names its temp dir, and their descendants."""
        marker = str(self.temp_dir)
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if any(marker in part for part in proc.info["cmdline"] or ()):
                    found[proc.pid] = proc
                    for child in proc.children(recursive=True):
                        found[child.pid] = child
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        for pid in list(self.pids):  # remembered earlier, e.g. workers whose title no longer names the dir
            try:
                found.setdefault(pid, psutil.Process(pid))
            except psutil.NoSuchProcess:
                self.pids.discard(pid)
        found.pop(os.getpid(), None)
        return list(found.values())

    def remember_processes(self) -> None:
        """Record the head's current processes so that stop() finds them even once reparented."""
        self.pids.update(p.pid for p in self.own_processes())

    def stop(self, timeout: float = 3.0) -> None:
        """Terminate this head's processes (SIGTERM, then SIGKILL after ``timeout``) and delete its files."""
        self.remember_processes()
        procs = self.own_processes()
        for proc in procs:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=timeout)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)


def head_env(root: Path, token: str) -> dict[str, str]:
    """Environment of the head and its jobs: token auth, loopback only, a private HOME (no ~/.ray touched)."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        HOME=str(home),
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        # Ray resolves 127.0.0.1 to the machine's network address unless cluster mode is off (single node).
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_NODE_IP_ADDRESS="127.0.0.1",
        RAY_USAGE_STATS_ENABLED="0",
        LRM_DIST_PROGRESS="0",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def start_head(num_cpus: int = 2, object_store_mb: int = 256, timeout: float = 60.0) -> RayHead:
    """``ray start --head`` on 127.0.0.1 with the job server and token auth; returns once it is up."""
    root = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # short: Ray's socket paths must stay < 108 chars
    token = secrets.token_hex(32)
    gcs, dashboard, client, agent_http, agent_grpc, runtime_env, metrics = free_ports(7)
    head = RayHead(root, gcs, dashboard, token, head_env(root, token))
    # Every port is chosen here: Ray's fixed defaults (10001, 52365, ...) clash with other Rays on the machine.
    cmd = [
        str(Path(sys.executable).parent / "ray"), "start", "--head",
        "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", "--include-dashboard=true",
        f"--port={gcs}", f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}",
        f"--num-cpus={num_cpus}", "--num-gpus=0", f"--object-store-memory={object_store_mb * 2**20}",
        f"--temp-dir={head.temp_dir}", "--disable-usage-stats",
    ]
    try:
        proc = subprocess.run(cmd, env=head.env, cwd=root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        head.stop()
        raise RuntimeError(f"ray start did not return within {timeout:.0f} s") from None
    head.remember_processes()
    if proc.returncode != 0:
        head.stop()
        raise RuntimeError(f"ray start failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return head
