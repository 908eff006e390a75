"""The warm worker's own side: a process that imports once, then forks one child per request.

Started by :mod:`mlflowlet.runtimes._warm` as ``python -c "...; main()" <fd> <spec>``, in the
environment every child will see (less the per-run variables). It imports mlflowlet and the
script's own top-level imports (a handler file's too), then answers requests on the socket
``fd``: each request carries ``argv`` (what would follow ``python``: ``script args...`` or ``-m
module args...``), ``env``, ``cwd`` and, as an ``SCM_RIGHTS`` file descriptor, the pipe the
child's output goes to. The child starts its own session, asks Linux for ``PR_SET_PDEATHSIG``,
and then runs the script as ``python script.py`` would: ``__main__`` is a fresh module,
``sys.argv``/``sys.path[0]``/environment/working directory are the request's, and it exits
the usual way (non-daemon threads joined, atexit handlers, the exit code of ``SystemExit``, 1
after an uncaught exception shown by ``sys.excepthook``, killed by SIGINT after an uncaught
``KeyboardInterrupt``) without tearing down every module (see :func:`_exit`).

The warm-up is refused (``safe: false``; the runtime then starts fresh interpreters) when the
imports started a thread (a forked child would lack it) or wrote output (each child's log would
miss it). Messages to the runtime are JSON lines: ``ready``, ``pid`` per fork, ``exit`` per
child that ended (its ``code`` as ``Popen.returncode`` gives it, and ``alone``).

The server is its children's subreaper (``PR_SET_CHILD_SUBREAPER``): whatever a child leaves
running when it ends (a grandchild in a session of its own, a double fork) becomes the server's
child, never init's. So when a child ends and the server has no child but its live iterations,
nothing of that child's tree runs any more: ``alone: true`` tells the runtime it need not look
through ``/proc`` for leftovers (see :func:`mlflowlet.runtimes._warm.left_nothing`).
"""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

_BASE = (
    "mlflowlet",
    "mlflowlet.context",
    "mlflowlet._ctx_factory",
    "mlflowlet.model",
    "mlflowlet.db.sqlite",
    "mlflowlet.artifacts",
    "mlflowlet.artifacts.manager",
    "mlflowlet.datastore.filestore",
    "mlflowlet.entrypoint",
    "mlflowlet.secrets",
    "mlflowlet._interrupt",
    "mlflowlet.artifacts._svg",
    "mlflowlet.datastore._hashing",
    "mlflowlet.datastore._integrity",
    "mlflowlet.settings",  # read by every tracked child (get_or_create_ctx, the run's start)
    "mlflowlet._flush",  # no thread at import: the flush thread starts with a child's first run
    "pwd",  # getpass.getuser() imports it on first use (the run's owner)
    "blake3",  # no threads at import: each large hash makes a pool of its own
    "getpass",
    "queue",
    "html",
    "logging",  # the context's logger (a child importing it paid ~2-6 ms)
)
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_prctl: list[Callable[..., int]] = []  # Linux's prctl, looked up once by the server


def _send(sock: socket.socket, **message: Any) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def _imports_of(path: str) -> list[ast.stmt]:
    """Return the top-level absolute import statements of the Python file ``path``."""
    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read(), path)
    except (OSError, SyntaxError, ValueError):
        return []  # the child meets the same problem, and reports it, when it runs the file
    found: list[ast.stmt] = []
    for node in tree.body:
        body = node.body if isinstance(node, ast.Try) else [node]
        for stmt in body:
            absolute = isinstance(stmt, ast.ImportFrom) and not stmt.level
            if isinstance(stmt, ast.Import) or absolute:
                found.append(stmt)
    return found


def _warm(files: list[str]) -> str:
    """Import mlflowlet and the files' imports; return why forking is unsafe ('' when safe)."""
    import importlib
    import tempfile
    import threading

    with tempfile.TemporaryFile() as spill:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(spill.fileno(), 1)
        os.dup2(spill.fileno(), 2)
        try:
            for name in _BASE:
                importlib.import_module(name)
            from mlflowlet.model import RunObject

            # pydantic inspects default factories on first use: once here, not per child
            RunObject.model_validate(RunObject().to_dict())
            for path in files:
                for stmt in _imports_of(path):
                    try:  # exactly what the statement imports (submodules included)
                        exec(compile(ast.Module([stmt], []), path, "exec"), {})  # noqa: S102
                    except Exception:  # noqa: BLE001,S112 - the child will fail the same way
                        continue
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
        wrote = os.fstat(spill.fileno()).st_size
    tasks = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    if threading.active_count() > 1 or tasks > 1:
        return f"the script's imports started threads ({max(tasks, threading.active_count())})"
    if wrote:
        return f"the script's imports wrote {wrote} bytes of output"
    return ""


def _read_request(sock: socket.socket) -> tuple[dict[str, Any], int] | None:
    """Read one request and its output fd; None when the runtime closed the socket."""
    head, fds, _, _ = socket.recv_fds(sock, 4, 1)
    if not head:
        return None
    while len(head) < 4:
        more = sock.recv(4 - len(head))
        if not more:
            return None
        head += more
    size = struct.unpack("!I", head)[0]
    body = b""
    while len(body) < size:
        more = sock.recv(size - len(body))
        if not more:
            return None
        body += more
    return json.loads(body), fds[0]


def _reap(
    sock: socket.socket, live: set[int], strays: dict[int, float] | None, grace: float
) -> None:
    """Reap what ended; report the iterations among them; end what they left running here.

    A process an ended child left behind becomes this server's child (its subreaper): it gets
    SIGTERM at once and SIGKILL ``grace`` seconds later (:func:`_end_strays`), as the runtime
    ends the leftovers it finds by their cookie; this also ends those that cleared their
    environment (a daemon that ``execve``'d with an empty one carries no cookie).
    """
    ended: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if not pid:
            break
        if strays is not None:
            strays.pop(pid, None)
        if pid in live:
            live.discard(pid)
            ended.append((pid, os.waitstatus_to_exitcode(status)))
    if not ended:
        return
    children = _children() if strays is not None else None  # not a subreaper: unknown
    for pid, code in ended:
        _send(sock, exit=pid, code=code, alone=children == live)  # no leftover of any runs
    if strays is None or children is None:
        return
    for pid in children - live - set(strays):
        _signal(pid, signal.SIGTERM)
        strays[pid] = time.monotonic() + grace


def _end_strays(strays: dict[int, float], final: bool = False) -> float | None:
    """SIGKILL the strays whose grace ended (every one when ``final``); return the next wait.

    A stray is this server's child until reaped here, so its pid is never another process's.
    """
    now = time.monotonic()
    for pid, deadline in list(strays.items()):
        if final or deadline <= now:
            _signal(pid, signal.SIGKILL)
            del strays[pid]
    return max(0.0, min(strays.values()) - now) if strays else None


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:  # ended meanwhile (reaped at the next SIGCHLD)
        pass


def _children() -> set[int] | None:
    """Return this server's live child processes (None when Linux cannot list them)."""
    found: set[int] = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children", "rb") as fh:
                found.update(int(pid) for pid in fh.read().split())
    except (OSError, ValueError):
        return None
    return found


def _serve(sock: socket.socket, grace: float) -> tuple[dict[str, Any], int]:
    """Fork a child per request; return (in the child only) its request and output fd.

    ``grace``: seconds between a stray's SIGTERM and its SIGKILL (see :func:`_reap`).
    """
    import selectors

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    subreaper = _call_prctl(_PR_SET_CHILD_SUBREAPER, 1)
    live: set[int] = set()  # the children forked for requests, until reaped
    strays: dict[int, float] = {}  # what ended children left here -> when it gets SIGKILL
    wait: float | None = None
    while True:
        for key, _ in sel.select(wait):
            if key.fileobj == wake_r:
                os.read(wake_r, 4096)
                _reap(sock, live, strays if subreaper else None, grace)
                continue
            got = _read_request(sock)
            if got is None:  # the runtime is done (or gone): children have PDEATHSIG, strays
                _end_strays({pid: 0.0 for pid in (_children() or set()) - live}, final=True)
                os._exit(0)
            request, out = got
            sync_r, sync_w = os.pipe()
            server = os.getpid()
            pid = os.fork()
            if pid == 0:
                os.close(sync_r)
                sel.close()
                for fd in (wake_r, wake_w):
                    os.close(fd)
                _child_setup(request, out, sync_w, sock, server)
                return request, out
            live.add(pid)
            os.close(sync_w)
            os.close(out)
            os.read(sync_r, 1)  # EOF: the child leads its own session (or is gone)
            os.close(sync_r)
            _send(sock, pid=pid, id=request["id"])
        wait = _end_strays(strays)


def _child_setup(
    request: dict[str, Any], out: int, sync_w: int, sock: socket.socket, server: int
) -> None:
    os.setsid()
    _pdeathsig(server)
    os.close(sync_w)
    sock.close()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in (null, out):
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:  # a fresh interpreter seeds numpy's global RNG anew
        numpy_random.seed()


def _find_prctl() -> None:
    """Look up Linux's ``prctl`` once, in the server: each child only calls it."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        _prctl[:] = [ctypes.CDLL(None, use_errno=True).prctl]
    except (OSError, AttributeError):
        return


def _call_prctl(option: int, value: int) -> bool:
    """Call ``prctl(option, value)``; return whether it took effect."""
    return bool(_prctl) and _prctl[0](option, value, 0, 0, 0) == 0


def _pdeathsig(server: int) -> None:
    if not _call_prctl(_PR_SET_PDEATHSIG, signal.SIGTERM):
        return
    if os.getppid() != server:  # the server died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _exec(argv: list[str]) -> None:
    """Run ``argv`` (what follows ``python``) in this process, as the interpreter would."""
    if argv[0] == "-m":
        import runpy

        sys.argv = ["-m", *argv[2:]]
        sys.path[0] = os.getcwd()
        runpy._run_module_as_main(argv[1])  # type: ignore[attr-defined]  # what `python -m` runs
        return
    import builtins
    import io
    import types
    from importlib.machinery import SourceFileLoader

    path = os.path.abspath(argv[0])
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    with io.open_code(path) as fh:
        code = compile(fh.read(), path, "exec")
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __cached__=None, __builtins__=builtins)
    main.__loader__ = SourceFileLoader("__main__", path)
    sys.modules["__main__"] = main
    exec(code, main.__dict__)  # noqa: S102 - the user's script, as `python script.py` runs it


def _run(argv: list[str]) -> int:
    """Run ``argv``; return the exit code the interpreter would give (-SIGINT: interrupted)."""
    try:
        _exec(argv)
    except SystemExit as exc:
        return _exit_code(exc.code)
    except BaseException as exc:  # shown as the interpreter shows it, without our frames
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        sys.excepthook(type(exc), exc, tb)
        return -signal.SIGINT if isinstance(exc, KeyboardInterrupt) else 1
    return 0


def _exit_code(code: Any) -> int:
    """Return the exit status (0-255) ``sys.exit(code)`` gives, as CPython computes it."""
    if code is None:
        return 0
    if isinstance(code, int):  # a bool too; C's long, -1 when it overflows; the low 8 bits
        return (code if -(2**63) <= code < 2**63 else -1) & 0xFF
    try:  # sys.exit("message"): printed, exit code 1
        print(code, file=sys.stderr)
    except Exception:  # noqa: BLE001,S110 - a broken stderr changes nothing about the code
        pass
    return 1


def _exit(code: int) -> None:
    """End the child as the interpreter ends, less the teardown of every module.

    Non-daemon threads are joined and atexit handlers run (as at any exit); the script's globals
    are released (their ``__del__`` and unclosed files' flushes run) and standard streams
    flushed. Tearing down the modules every iteration shares with the worker would cost more
    than the iteration itself, and Python does not promise ``__del__`` for what is left then.
    """
    import atexit
    import gc
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    main = sys.modules.get("__main__")
    if main is not None:
        main.__dict__.clear()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    if code == -signal.SIGINT:  # like CPython after an uncaught KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code & 0xFF)


def main() -> None:
    """Warm up, tell the runtime, serve; in each forked child, run its request."""
    import gc

    sock = socket.socket(fileno=int(sys.argv[1]))
    spec = json.loads(sys.argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the runtime ends the server
    sys.path[0] = spec["path0"]
    why = _warm(spec["files"])
    _send(sock, ready=True, safe=not why, why=why)
    if why:
        return
    _find_prctl()
    gc.collect()
    gc.freeze()  # the children's collections skip (and so do not copy) what the server holds
    request, _ = _serve(sock, float(spec.get("grace", 2.0)))
    _exit(_run(request["argv"]))
