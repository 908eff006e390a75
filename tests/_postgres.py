"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks.

Debian's ``postgresql`` package provides the binaries (``scripts/test-deps.sh`` installs it for
``make test``); ``initdb`` and ``postgres`` refuse to run as root, so as root they run as the
``postgres`` user in a temporary directory owned by it. The session fixture ``postgres_cluster``
(tests/conftest.py) starts one of these for the whole run.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

READY_WITHIN = 30.0  # seconds for a new cluster to accept connections


def _bindir() -> str | None:
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found.sort(key=lambda p: int(Path(p).parents[1].name) if Path(p).parents[1].name.isdigit()
               else 0)
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb and os.access(Path(initdb).with_name("postgres"), os.X_OK):
        return str(Path(initdb).parent)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    """A PostgreSQL cluster in a temporary directory; ``url(db)`` points at one database."""

    def __init__(self, bindir: str) -> None:
        self.bindir, self.port = bindir, 0
        self.proc: subprocess.Popen | None = None
        self._as: dict = {}
        if os.geteuid() == 0:  # initdb/postgres refuse root: run them as 'postgres'
            import pwd

            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run initdb as")
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        self.root = tempfile.mkdtemp(prefix="mlflowlet-pg-")
        if self._as:
            os.chown(self.root, self._as["user"], self._as["group"])

    def _run(self, *argv: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([os.path.join(self.bindir, argv[0]), *argv[1:]], cwd=self.root,
                                env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"},
                                **self._as, **kw)

    def start(self) -> None:
        """Run initdb, start the server on a free port and wait until it takes connections."""
        data = os.path.join(self.root, "data")
        init = self._run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync",
                         "-E", "UTF8", "--locale=C", stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        out, _ = init.communicate(timeout=120)
        if init.returncode:
            raise RuntimeError(f"initdb failed ({init.returncode}): {out[-2000:]}")
        for _attempt in range(3):  # a free port may be taken before postgres binds it
            self.port = _free_port()
            log = open(os.path.join(self.root, "postgres.log"), "ab")
            self.proc = self._run(
                "postgres", "-D", data, "-k", self.root, "-p", str(self.port), "-h", "127.0.0.1",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=200", stdout=log, stderr=log)
            log.close()
            if self._wait_ready():
                return
        raise RuntimeError(f"postgres did not start: {self.log()[-2000:]}")

    def _wait_ready(self) -> bool:
        import psycopg

        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                try:  # pause between polls, and notice at once if the server exited
                    self.proc.wait(timeout=0.05)
                    return False
                except subprocess.TimeoutExpired:
                    pass
        raise RuntimeError(f"postgres not ready within {READY_WITHIN} s: {self.log()[-2000:]}")

    def log(self) -> str:
        """The server log so far."""
        path = os.path.join(self.root, "postgres.log")
        return Path(path).read_text(errors="replace") if os.path.exists(path) else ""

    def url(self, dbname: str) -> str:
        """The URL of one database of this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (immediate shutdown: the cluster is thrown away) and delete it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
