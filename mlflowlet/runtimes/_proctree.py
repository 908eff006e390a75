"""Process trees of the subprocess runtime: start a child in its own session, end all of it.

A child starts as the leader of a new session (its process group holds its own children),
marked with an environment cookie every descendant inherits (``MLFLOWLET_PROC_TREE``), and on
Linux with ``PR_SET_PDEATHSIG`` (the kernel sends it SIGTERM when the thread that started it
dies). :func:`terminate` ends the whole tree: the group and every process found through
``/proc`` by parent pid or by the cookie (which catches those that left the group: ``setsid``,
double forks), with SIGTERM, a grace period, then SIGKILL. One watchdog process per parent
(``python -I -S``, in a session of its own) holds the read end of a pipe whose write end only the
parent has: when the parent dies, however it dies, the pipe closes and the watchdog ends every
tree the parent started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from .. import _process

TREE_ENV = "MLFLOWLET_PROC_TREE"
_PR_SET_PDEATHSIG = 1
_POLL = 0.02  # seconds between checks while a tree is given its grace period

_WATCHDOG = r"""
import os, signal, sys, time
for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
    signal.signal(s, signal.SIG_IGN)  # only the end of the pipe (the parent's death) counts
prefix, grace, groups = (sys.argv[1] + ".").encode(), float(sys.argv[2]), set()
for line in sys.stdin.buffer:
    op, pid = line[:1], line[1:].strip()
    if pid.isdigit():
        (groups.add if op == b"+" else groups.discard)(int(pid))
def found():
    out = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            with open("/proc/%s/environ" % name, "rb") as fh:
                env = b"\0" + fh.read()
        except (OSError, ValueError):
            continue
        if b"\0MLFLOWLET_PROC_TREE=" + prefix in env:
            out.append(int(name))
    return out
for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid in groups:
        try:
            os.killpg(pid, sig)
        except OSError:
            pass
    for pid in found():
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    end = time.monotonic() + grace
    while sig == signal.SIGTERM and found() and time.monotonic() < end:
        time.sleep(0.05)
"""


class _Watchdog:
    """The per-process watchdog that ends this process's trees when the process dies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._pid = 0
        self.prefix = ""

    def cookie(self) -> str:
        """Return a new tree cookie (this process's prefix and a unique part)."""
        self._ensure()
        return f"{self.prefix}.{uuid.uuid4().hex[:12]}"

    def _ensure(self) -> None:
        with self._lock:
            if self._pid == os.getpid() and self._proc is not None and self._proc.poll() is None:
                return
            self._pid, self.prefix = os.getpid(), f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _WATCHDOG, self.prefix, "2"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError:  # no watchdog: PR_SET_PDEATHSIG and the runtime's own kills remain
                self._proc = None

    def tell(self, op: str, pid: int) -> None:
        """Register (``+``) or forget (``-``) a process group the watchdog ends."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None or self._pid != os.getpid():
                return
            try:
                proc.stdin.write(f"{op}{pid}\n".encode())
                proc.stdin.flush()
            except (OSError, ValueError):
                self._proc = None

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        proc, self._proc, self._pid = self._proc, None, 0
        if proc is not None and proc.stdin is not None:
            try:  # a forked child must not keep the parent's watchdog alive
                os.close(proc.stdin.fileno())
            except OSError:
                pass


watchdog = _Watchdog()
_process.at_fork(child=watchdog._after_fork_in_child)


def _pdeathsig() -> Callable[[], None] | None:
    """Return a ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:  # between fork and exec: no locks, no imports
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


_preexec: list[Callable[[], None] | None] = []


def start(argv: list[str], env: dict[str, str], **popen: Any) -> tuple[subprocess.Popen, str]:
    """Start ``argv`` as a new tree; return the process and the tree's cookie.

    Raises:
        OSError: the program cannot be started.
    """
    if not _preexec:
        _preexec.append(_pdeathsig())
    cookie = watchdog.cookie()
    proc = subprocess.Popen(
        argv,
        env={**env, TREE_ENV: cookie},
        start_new_session=True,
        preexec_fn=_preexec[0],
        **popen,
    )
    watchdog.tell("+", proc.pid)
    return proc, cookie


def members(cookie: str, root: int | None = None) -> set[int]:
    """Live processes of a tree: those carrying ``cookie``, in ``root``'s group, or under it."""
    if not os.path.isdir("/proc"):
        return set()
    needle = f"\0{TREE_ENV}={cookie}\0".encode()
    parents: dict[int, int] = {}
    found: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] in (b"Z", b"X"):
            continue  # dead already, waiting to be reaped
        parents[pid] = int(fields[1])
        if root is not None and int(fields[2]) == root:
            found.add(pid)
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if needle in b"\0" + fh.read() + b"\0":
                    found.add(pid)
        except OSError:
            continue
    if root is not None and root in parents:
        found.add(root)
    grew = True
    while grew:  # descendants by parent pid (a process that cleared its environment)
        grew = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    found.discard(os.getpid())
    return found


def _signal(pids: set[int], group: int | None, sig: int) -> None:
    if group is not None:
        try:
            os.killpg(group, sig)
        except OSError:
            pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def terminate(proc: Any, cookie: str, grace: float, group: int | None = None) -> bool:
    """End a tree: SIGTERM, up to ``grace`` seconds, then SIGKILL; reap ``proc``.

    ``proc`` is a ``subprocess.Popen`` (or a warm worker's forked child), ``group`` the process
    group to end as well when ``proc`` is no longer running (a forked child's own group).

    Returns:
        Whether anything was still running (and so was signalled).
    """
    running = proc is not None and proc.poll() is None
    group = proc.pid if running else group
    pids = members(cookie, group)
    if not running and not pids:
        if proc is not None:
            watchdog.tell("-", proc.pid)
        return False
    _signal(pids, group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if (proc is None or proc.poll() is not None) and not members(cookie):
            break
        time.sleep(_POLL)  # the grace period itself, not a synchronisation
    rest = members(cookie, proc.pid if proc is not None and proc.poll() is None else None)
    if rest:
        _signal(rest, None, signal.SIGKILL)
    if group is not None:
        _signal(set(), group, signal.SIGKILL)
    if proc is not None:
        proc.wait()
        watchdog.tell("-", proc.pid)
    return True
