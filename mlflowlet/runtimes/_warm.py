"""Warm workers: sweep iterations forked from a pre-warmed process instead of a new interpreter.

A fresh interpreter per iteration costs ~100 ms of start-up and imports; a fork from a process
that already imported mlflowlet and the script's imports costs a few ms. :class:`WarmWorker`
starts that process (:mod:`mlflowlet.runtimes._forkserver`) once per sweep and asks it for one
child per iteration, each still a process of its own: its own session and process tree (ended by
:mod:`~mlflowlet.runtimes._proctree` on timeout, Ctrl-C or SIGTERM), its output on a pipe the
runtime reads (:class:`~mlflowlet.runtimes._pump.Pump`), its exit code reported back.

:func:`unsafe_reason` says when iterations start as fresh interpreters instead: not Linux,
``MLFLOWLET_NO_FORKSERVER=1``, ``mode='pass'``, another ``python=`` than this interpreter, or a
script whose imports start threads or write output (the server refuses, see ``_forkserver``).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
from typing import Any

from . import _proctree

READY_SECONDS = 120.0  # the warm-up imports (a slow machine, a big library)
FORK_SECONDS = 30.0
_CODE = "from mlflowlet.runtimes._forkserver import main; main()"
PER_RUN_ENV = ("MLFLOWLET_EXEC_CONFIG", "MLFLOWLET_EXEC_SECRETS", _proctree.TREE_ENV)


def unsafe_reason(argv: list[str], python: str, mode: str) -> str:
    """Return why iterations of ``argv`` cannot fork from a warm worker ('' when they can)."""
    from ..settings import get_settings

    if not sys.platform.startswith("linux"):
        return f"fork is only used on Linux (this is {sys.platform})"
    if get_settings().no_forkserver.strip().lower() in ("1", "true", "yes"):
        return "MLFLOWLET_NO_FORKSERVER is set"
    if mode == "pass":
        return "mode='pass' runs the command as given"
    if python != sys.executable:
        return f"python={python!r} is not this interpreter"
    if len(argv) < 2 or (argv[1] != "-m" and not argv[1].endswith(".py")):
        return "not a Python script or module"
    return ""


def left_nothing(proc: object) -> bool:
    """Whether ``proc``, an ended child, is known to have left no process of its tree running.

    True only for a forked child its warm worker reported ``alone`` (the worker, their subreaper,
    had no other child) whose process group is empty too; the runtime then skips the search of
    ``/proc`` for leftovers (:func:`~mlflowlet.runtimes._proctree.terminate`).
    """
    if not isinstance(proc, ForkedProcess) or not proc.alone or not proc.group:
        return False
    try:
        os.killpg(proc.group, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class ForkedProcess:
    """A child forked by the warm worker, with the parts of ``subprocess.Popen`` the runtime uses.

    ``lost`` is True when the worker died before reporting the exit (its code is then unknown);
    ``alone`` when the worker saw nothing of the child's tree outlive it (see ``_forkserver``).
    """

    def __init__(self, args: list[str]) -> None:
        self.args, self.pid = args, 0
        self.returncode: int | None = None
        self.group: int | None = None  # its own process group, once forked
        self.stdout: Any = None
        self.lost = False
        self.alone = False
        self._done = threading.Event()

    def _ended(self, code: int | None, lost: bool = False, alone: bool = False) -> None:
        self.returncode, self.lost, self.alone = (-9 if code is None else code), lost, alone
        self._done.set()

    def poll(self) -> int | None:
        """Return the exit code, or None while the child runs."""
        return self.returncode if self._done.is_set() else None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the child to end; raise ``subprocess.TimeoutExpired`` after ``timeout``."""
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode


class WarmWorker:
    """One fork server for the iterations of one sweep (see the module docstring).

    Args:
        argv: the first iteration's command (``[python, script, ...]`` or ``[python, -m, ...]``).
        env: the environment of the children (per-run variables are left out of the server's).
        cwd: the children's working directory.
        files: Python files whose top-level imports the server imports ahead.
        grace: seconds the server gives a process a finished child left behind between its
            SIGTERM and SIGKILL (the runtime's ``kill_grace``).
    """

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str | None,
        files: list[str],
        grace: float = 2.0,
    ):
        self.why = ""
        self._lock = threading.Lock()
        self._procs: dict[int, ForkedProcess] = {}
        self._asked: dict[int, tuple[threading.Event, ForkedProcess]] = {}
        self._next = 0
        self._closed = False
        here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = here
        cwd = os.path.abspath(cwd or os.getcwd())
        script = os.path.realpath(os.path.join(cwd, argv[1]))
        path0 = cwd if argv[1] == "-m" else os.path.dirname(script)
        spec = json.dumps({"files": files, "path0": path0, "grace": grace})
        base = {k: v for k, v in env.items() if k not in PER_RUN_ENV}
        self.cookie = _proctree.watchdog.cookie()
        try:
            self._server = subprocess.Popen(
                [argv[0], "-c", _CODE, str(there.fileno()), spec],
                env={**base, _proctree.TREE_ENV: self.cookie},
                cwd=cwd,
                pass_fds=(there.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            there.close()
        _proctree.watchdog.tell("+", self._server.pid)
        self._reader = self._sock.makefile("rb")
        self.why = self._ready()
        if self.why:
            self.close()
            return
        threading.Thread(target=self._read, daemon=True, name="mlflowlet-warm").start()

    @property
    def usable(self) -> bool:
        """Whether iterations can fork from this worker."""
        return not self.why and not self._closed

    def _ready(self) -> str:
        self._sock.settimeout(READY_SECONDS)
        try:
            line = self._reader.readline()
        except OSError as exc:
            return f"the warm worker did not start ({exc})"
        finally:
            self._sock.settimeout(None)
        if not line:
            return f"the warm worker exited during its warm-up (code {self._server.poll()})"
        message = json.loads(line)
        return "" if message.get("safe") else str(message.get("why") or "unsafe")

    def _read(self) -> None:
        for line in self._reader:
            message = json.loads(line)
            with self._lock:
                if "pid" in message:
                    event, proc = self._asked.pop(message["id"])
                    proc.pid = proc.group = message["pid"]
                    self._procs[proc.pid] = proc
                    event.set()
                elif "exit" in message:
                    found = self._procs.pop(message["exit"], None)
                    if found is not None:
                        found._ended(message["code"], alone=message.get("alone") is True)
        with self._lock:  # the worker is gone: nothing it started can report any more
            self._closed = True
            for event, _ in self._asked.values():
                event.set()
            for proc in self._procs.values():
                proc._ended(None, lost=True)
            self._procs.clear()

    def start(self, argv: list[str], env: dict[str, str], cwd: str | None) -> tuple[Any, str]:
        """Fork a child running ``argv``; return it (Popen-like) and its tree cookie.

        Raises:
            OSError: the worker cannot fork now (the caller starts a fresh interpreter).
        """
        cookie = _proctree.watchdog.cookie()
        request: dict[str, Any] = {"argv": argv[1:], "env": {**env, _proctree.TREE_ENV: cookie}}
        request["cwd"] = os.path.abspath(cwd or os.getcwd())
        proc, event = ForkedProcess(argv), threading.Event()
        read_end, write_end = os.pipe()
        try:
            with self._lock:
                if self._closed:
                    raise OSError("the warm worker is closed")
                request["id"] = self._next = self._next + 1
                self._asked[self._next] = (event, proc)
                body = json.dumps(request).encode()
                socket.send_fds(self._sock, [struct.pack("!I", len(body))], [write_end])
                self._sock.sendall(body)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the worker holds its own copy (in flight, then the child's)
        if not event.wait(FORK_SECONDS) or not proc.pid:
            os.close(read_end)
            raise OSError("the warm worker did not fork in time")
        proc.stdout = open(read_end, "rb", buffering=0)  # noqa: SIM115 - the pump closes it
        _proctree.watchdog.tell("+", proc.pid)
        return proc, cookie

    def close(self) -> None:
        """End the worker and anything still carrying its cookie (a sweep's leftovers)."""
        with self._lock:
            self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        try:
            self._server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _proctree.terminate(self._server, self.cookie, 1.0)
