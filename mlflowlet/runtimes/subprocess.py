"""The subprocess runtime: runs a script, or a handler in a file, in a child Python process.

``new_runner(command='training.py')`` runs ``python training.py`` with the run spec in
``MLFLOWLET_EXEC_CONFIG`` and the run DB in ``MLFLOWLET_DBPATH``; the script's
``get_or_create_ctx()`` picks both up and records into the run the parent stored (``created``)
before starting the child. With ``handler='my_func'`` the child runs
``python -m mlflowlet.entrypoint``, which imports the file and calls the function.

Modes (``mode=``): ``''`` (default) as above; ``'noctx'`` for a script that knows nothing of
mlflowlet (params become ``--key value`` arguments; the parent records the exit code and output);
``'pass'`` runs the command as given (``{key}`` in its arguments is replaced by param ``key``).

Inline secret values never enter the spec JSON or the DB: they travel in
``MLFLOWLET_EXEC_SECRETS``, which the child removes from its environment once read. The child's
output is echoed (``watch=True``) with secret values masked. A child that exits non-zero while the
DB still says it runs becomes ``error`` with the exit code or signal name; ``timeout=`` kills the
child (``error: timed out after N s``); Ctrl-C kills the children and marks their runs ``aborted``.
Hyper-parameter iterations run as a pool of ``parallel`` children (default: the CPU count).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import IO, Any

from .._owner import is_died_message
from ..context import EXEC_SECRETS_ENV
from ..entrypoint import RUN_JSON_MARKER
from ..errors import ConfigError, MlflowletError
from ..model import RunObject, now_iso
from .base import Runtime, finish_time_fields
from .base import _short_name as _default_name

MODES = ("", "noctx", "pass")
_ACTIVE_STATES = ("created", "pending", "running")
_MAX_KEPT_OUTPUT = 16 * 1024 * 1024  # the parent keeps at most this much of a child's output
_FLUSH_SECONDS = 1.0
_KILL_GRACE_SECONDS = 3.0


class SubprocessRuntime(Runtime):
    """Runs ``command`` (``'training.py [args]'``) in child processes.

    Args:
        command: the script and its arguments (or any command with ``mode='pass'``).
        **options: ``handler`` (a function name in the script), ``mode`` (``''``, ``'noctx'``,
            ``'pass'``), ``timeout`` (seconds per run), ``parallel`` (children at once for
            hyper-parameters), ``python`` (the interpreter, default this one), ``env`` (extra
            environment variables), ``cwd`` (the children's working directory).
    """

    kind = "subprocess"

    def __init__(self, command: str = "", **options: Any) -> None:
        super().__init__(command, **options)
        self.argv = shlex.split(command) if command else []
        self.mode = self.options.pop("mode", "") or ""
        self.timeout = self.options.pop("timeout", None)
        self.parallel = self.options.pop("parallel", None)
        self.python = self.options.pop("python", None) or sys.executable
        self.env = {k: str(v) for k, v in (self.options.pop("env", None) or {}).items()}
        self.cwd = self.options.pop("cwd", None)
        self._watch = True
        self._abort = threading.Event()
        self._live: set[subprocess.Popen] = set()
        self._live_lock = threading.Lock()

    # checks -----------------------------------------------------------------------------------
    def _before_run(self, run: RunObject, handler: Any, db: Any, **options: Any) -> None:
        self._watch = bool(options.pop("watch", True))
        mode = options.pop("mode", None)
        run.spec.mode = (mode if mode is not None else run.spec.mode or self.mode) or ""
        if options.get("timeout") is None and self.timeout is not None:
            options["timeout"] = self.timeout
        parallel = options.pop("parallel", None) or self.parallel
        if parallel and not run.spec.parallel:
            run.spec.parallel = int(parallel)
        super()._before_run(run, handler, db, **options)
        if self.argv and run.metadata.name == _default_name(self.command):
            run.metadata.name = _default_name(self.argv[0])  # 'train', not 'train.py --x 1'
        self._abort.clear()
        self._check(run, handler, db)

    def _check(self, run: RunObject, handler: Any, db: Any) -> None:
        if run.spec.mode not in MODES:
            raise ConfigError(
                f"unknown subprocess mode {run.spec.mode!r}; use '' (default), 'noctx' or 'pass'"
            )
        if not self.argv:
            raise ConfigError(
                "the subprocess runtime needs a command: new_runner(command='training.py')"
            )
        first = self.argv[0]
        if first.endswith(".py"):
            if not os.path.isfile(os.path.join(self.cwd or "", first)):
                raise ConfigError(f"script {first!r} does not exist (in {self.cwd or os.getcwd()})")
        elif run.spec.mode != "pass":
            raise ConfigError(
                f"the subprocess runtime runs a .py script, got {first!r}; "
                "use mode='pass' (--mode pass) to run any other command"
            )
        elif shutil.which(first) is None:
            raise ConfigError(f"command {first!r} not found on PATH")
        if self._handler_name(run, handler) and run.spec.mode:
            raise ConfigError(
                f"handler= runs the function through mlflowlet; it cannot run in mode "
                f"{run.spec.mode!r} (drop --mode, or drop --handler)"
            )
        from ..secrets import SecretsStore

        SecretsStore.from_sources(run.spec.secret_sources)  # a missing secrets file fails now
        _db_location(db)

    def _handler_name(self, run: RunObject, handler: Any) -> str:
        if callable(handler):
            return getattr(handler, "__name__", "")
        name = handler or run.spec.handler or ""
        return name.rsplit(":", 1)[-1] if isinstance(name, str) else ""

    @staticmethod
    def _default_parallel() -> int:
        return os.cpu_count() or 1

    # one child --------------------------------------------------------------------------------
    def _execute(self, run: RunObject, handler: Any, db: Any) -> RunObject:
        argv = self._child_argv(run, handler)
        env = self._child_env(run, db)
        masker = _masker(run)
        owner = run.spec.mode in ("noctx", "pass")  # the parent records state and output
        meta = run.metadata
        if owner:
            _mark_running(run)
        db.store_run(_record(run, masker), meta.uid, meta.project, meta.iteration)
        if self._abort.is_set():
            return self._finalize(run, db, None, "aborted", _Pump(None, None, None, masker))
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            pump = _Pump(None, None, None, masker)
            return self._finalize(run, db, None, f"cannot start {argv[0]!r}: {exc}", pump)
        with self._live_lock:
            self._live.add(proc)
        pump = _Pump(proc.stdout, self._watch, (db, meta) if owner else None, masker)
        if self._abort.is_set():  # Ctrl-C landed while this child was starting
            _kill(proc, signal.SIGKILL)
        try:
            reason = self._wait(proc, run.spec.timeout)
        except KeyboardInterrupt:
            self._abort.set()
            _stop(proc)
            pump.join()
            self._finalize(run, db, proc.returncode, "aborted", pump)
            raise
        finally:
            with self._live_lock:
                self._live.discard(proc)
        pump.join()
        if self._abort.is_set():
            reason = "aborted"
        return self._finalize(run, db, proc.returncode, reason, pump)

    def _wait(self, proc: subprocess.Popen, timeout: float | None) -> str:
        try:
            proc.wait(timeout=timeout or None)
        except subprocess.TimeoutExpired:
            _kill(proc, signal.SIGKILL)
            proc.wait()
            return f"timed out after {timeout:g} s"
        return ""

    def _child_argv(self, run: RunObject, handler: Any) -> list[str]:
        script, args = self.argv[0], self.argv[1:]
        mode, params = run.spec.mode, run.spec.params
        if mode == "pass":
            argv = [_substitute(a, params) for a in self.argv]
            return [self.python, *argv] if script.endswith(".py") else argv
        if mode == "noctx":
            extra = [x for k, v in params.items() for x in (f"--{k}", _as_arg(v))]
            return [self.python, script, *args, *extra]
        name = self._handler_name(run, handler)
        if name:
            path = os.path.abspath(os.path.join(self.cwd or "", script))
            return [self.python, "-m", "mlflowlet.entrypoint", "--handler", f"{path}:{name}"]
        return [self.python, script, *args]

    def _child_env(self, run: RunObject, db: Any) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env["MLFLOWLET_DBPATH"] = _db_location(db)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop(EXEC_SECRETS_ENV, None)
        if run.spec.mode:
            env.pop("MLFLOWLET_EXEC_CONFIG", None)  # the child is not tracked: no run to join
            return env
        env["MLFLOWLET_EXEC_CONFIG"] = run.to_json()  # inline secrets reduced to key names
        inline = _inline_secrets(run)
        if inline:
            env[EXEC_SECRETS_ENV] = json.dumps(inline)
        return env

    def _finalize(
        self, run: RunObject, db: Any, code: int | None, reason: str, pump: _Pump
    ) -> RunObject:
        meta = run.metadata
        final, problem = _read_back(run, db)
        started = final.status.state not in ("created",)
        child_owned = not run.spec.mode and started
        died = child_owned and final.state == "error" and is_died_message(final.status.error)
        if died:  # a reader saw the child gone first; the exit code says more
            final.status.state = "running"
        error = problem
        if final.state == "aborted" and code and not reason:  # aborted from outside (abort_run)
            reason, error = "aborted", final.status.error
        if reason == "aborted":
            state = "completed" if final.state == "completed" and code == 0 else "aborted"
            error = "" if state == "completed" else error or "aborted by KeyboardInterrupt"
        elif reason:
            state, error = "error", reason
        elif problem:
            state = "error"
        elif code:
            keep = child_owned and final.state == "error" and final.status.error
            state, error = "error", (final.status.error if keep else _describe_exit(code))
        elif final.state in _ACTIVE_STATES:
            state = "completed"
        else:
            state, error = final.state, final.status.error
        crashed = child_owned and final.state in _ACTIVE_STATES
        if crashed or not started or run.spec.mode:
            # the child's own log lacks output it had not flushed: keep the parent's copy
            pump.store_all(db, meta, replace=crashed or not started)
        if error and error != final.status.error:
            db.store_log(meta.uid, meta.project, pump.mask(f"{error}\n").encode())
        final.status.state = state
        final.status.error = pump.mask(error) if error else ""
        final.status.exit_code = code
        final.status.start_time = final.status.start_time or run.status.start_time or now_iso()
        finish_time_fields(final)
        db.store_run(_record(final, pump._masker), meta.uid, meta.project, meta.iteration)
        return final

    # many children ----------------------------------------------------------------------------
    def _execute_many(
        self, runs: Iterable[RunObject], handler: Any, db: Any, parallel: int
    ) -> Iterator[RunObject]:
        """Run iterations as a pool of ``parallel`` children; Ctrl-C kills every live child."""
        pool = ThreadPoolExecutor(max(1, parallel), thread_name_prefix="mlflowlet-child")
        pending: set[Future] = set()
        try:
            for run in runs:  # pulled lazily, so a stop condition stops new launches
                pending.add(pool.submit(self._execute, run, handler, db))
                while len(pending) >= parallel:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (fut.result() for fut in done)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (fut.result() for fut in done)
        except BaseException:
            self._abort.set()
            self._stop_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _run_iterations(self, parent: RunObject, handler: Any, db: Any) -> RunObject:
        try:
            return super()._run_iterations(parent, handler, db)
        except KeyboardInterrupt:
            meta = parent.metadata
            db.update_run(
                {
                    "status.state": "aborted",
                    "status.error": "aborted by KeyboardInterrupt",
                    "status.end_time": now_iso(),
                },
                meta.uid,
                meta.project,
                0,
            )
            raise

    def _stop_all(self) -> None:
        with self._live_lock:
            live = list(self._live)
        for proc in live:
            _kill(proc, signal.SIGINT)
        deadline = time.monotonic() + _KILL_GRACE_SECONDS
        for proc in live:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill(proc, signal.SIGKILL)


class _Pump:
    """Reads a child's merged stdout/stderr in a thread: echoes, keeps, and (owner) stores it."""

    def __init__(
        self, stream: IO[bytes] | None, echo: bool | None, store: Any, masker: Any
    ) -> None:
        self._echo, self._store, self._masker = echo, store, masker
        self._kept: list[str] = []
        self._kept_size = 0
        self._unsaved: list[str] = []
        self._last_save = time.monotonic()
        self.run_json = ""
        self._thread = None
        if stream is not None:
            self._thread = threading.Thread(
                target=self._read, args=(stream,), daemon=True, name="mlflowlet-output"
            )
            self._thread.start()

    def mask(self, text: str) -> str:
        """Hide secret values in ``text``."""
        return self._masker.mask(text) if self._masker is not None else text

    def _read(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            if line.startswith(RUN_JSON_MARKER):
                self.run_json = line  # the entrypoint's report: the DB already has it
                continue
            line = self.mask(line)
            if self._echo:
                try:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                except (OSError, ValueError):  # a closed terminal must not stall the child
                    self._echo = False
            self._keep(line)
            if self._store is not None:
                self._unsaved.append(line)
                if time.monotonic() - self._last_save >= _FLUSH_SECONDS:
                    self._save()
        stream.close()

    def _keep(self, line: str) -> None:
        self._kept.append(line)
        self._kept_size += len(line)
        while self._kept_size > _MAX_KEPT_OUTPUT and len(self._kept) > 1:
            self._kept_size -= len(self._kept.pop(0))

    def _save(self) -> None:
        db, meta = self._store
        text, self._unsaved = "".join(self._unsaved), []
        self._last_save = time.monotonic()
        if text:
            db.store_log(meta.uid, meta.project, text.encode())

    def join(self) -> None:
        """Wait for the output to end (bounded: a grandchild may hold the pipe open)."""
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._store is not None:
            self._save()

    def store_all(self, db: Any, meta: Any, replace: bool) -> None:
        """Store everything kept (``replace`` the DB's copy); owners already stored theirs."""
        if self._store is not None:
            return
        text = "".join(self._kept)
        if text or replace:
            db.store_log(meta.uid, meta.project, text.encode(), append=not replace)


def _read_back(run: RunObject, db: Any) -> tuple[RunObject, str]:
    """Return the run as the child left it in the DB, and a problem if it cannot be read."""
    from pydantic import ValidationError

    meta = run.metadata
    try:
        final = RunObject.model_validate(db.read_run(meta.uid, meta.project, meta.iteration))
    except (MlflowletError, ValidationError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return run, f"the child left an unreadable run record ({first})"
    if final.state not in (
        "created",
        "pending",
        "running",
        "completed",
        "error",
        "aborted",
        "skipped",
    ):
        return run, f"the child left the run in an unknown state {final.state!r}"
    final.spec.secret_sources = run.spec.secret_sources  # keep in-memory inline values
    return final, ""


def _mark_running(run: RunObject) -> None:
    from .._provenance import host_facts

    facts = host_facts()
    status = run.status
    status.state, status.start_time = "running", now_iso()
    status.host, status.python_version = facts["host"], facts["python_version"]
    run.metadata.owner = run.metadata.owner or facts["owner"]


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"process killed by {name} (exit code {code})"
    return f"process exited with code {code}"


def _kill(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the child leads its own session: take its children too
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen) -> None:
    _kill(proc, signal.SIGINT)
    try:
        proc.wait(timeout=_KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _kill(proc, signal.SIGKILL)
        proc.wait()


def _db_location(db: Any) -> str:
    where = getattr(db, "url", "") or getattr(db, "path", "")
    if not where:
        raise ConfigError(
            f"the subprocess runtime needs a run DB a child can open (a SQLite file or a server "
            f"URL); {type(db).__name__} has neither"
        )
    return str(where)


def _inline_secrets(run: RunObject) -> dict[str, str]:
    from ..secrets import SecretsStore

    sources = [
        s
        for s in run.spec.secret_sources
        if s.get("kind") == "inline" and s.get("source") is not None
    ]
    return dict(SecretsStore.from_sources(sources).items()) if sources else {}


def _masker(run: RunObject) -> Any:
    if not run.spec.secret_sources:
        return None
    from ..secrets import SecretsStore

    store = SecretsStore.from_sources(run.spec.secret_sources)
    return store if len(store) else None


def _record(run: RunObject, masker: Any) -> dict[str, Any]:
    """Return the run as stored: secret values hidden in every string (params may quote them)."""
    if masker is None:
        return run.to_dict()
    from .._ctx_persist import _masked

    return _masked(run.to_dict(), masker.mask)


def _as_arg(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _substitute(arg: str, params: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _as_arg(params[m[1]]) if m[1] in params else m[0], arg)
