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

import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TYPE_CHECKING, Any

from .. import _interrupt
from .._owner import is_died_message
from .._text import log_bytes
from ..context import EXEC_SECRETS_ENV
from ..errors import ConfigError, MlflowletError
from ..model import RunObject, now_iso
from . import _proctree, _warm
from ._pump import Pump, empty
from .base import Runtime, finish_time_fields
from .base import _short_name as _default_name

if TYPE_CHECKING:
    from ..db.base import RunDB

MODES = ("", "noctx", "pass")
_ACTIVE_STATES = ("created", "pending", "running")
KILL_GRACE_SECONDS = 2.0


class SubprocessRuntime(Runtime):
    """Runs ``command`` (``'training.py [args]'``) in child processes.

    Args:
        command: the script and its arguments (or any command with ``mode='pass'``).
        **options: ``handler`` (a function name in the script), ``mode`` (``''``, ``'noctx'``,
            ``'pass'``), ``timeout`` (seconds per run), ``parallel`` (children at once for
            hyper-parameters), ``python`` (the interpreter, default this one), ``env`` (extra
            environment variables), ``cwd`` (the children's working directory),
            ``kill_grace`` (seconds between SIGTERM and SIGKILL when a child's process tree is
            ended: on timeout, Ctrl-C or SIGTERM; default 2).
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
        self.kill_grace = float(self.options.pop("kill_grace", KILL_GRACE_SECONDS))
        self._live: dict[int, tuple[Any, str]] = {}
        self._warm: _warm.WarmWorker | None = None
        #: why the last sweep's children started as fresh interpreters ('' when they forked)
        self.warm_reason = ""
        self._live_lock = threading.Lock()

    # checks -----------------------------------------------------------------------------------
    def _before_run(self, run: RunObject, handler: Any, db: RunDB, **options: Any) -> None:
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

    def _check(self, run: RunObject, handler: Any, db: RunDB) -> None:
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
    def _execute(self, run: RunObject, handler: Any, db: RunDB) -> RunObject:
        argv = self._child_argv(run, handler)
        env = self._child_env(run, db)
        masker = _masker(run)
        owner = run.spec.mode in ("noctx", "pass")  # the parent records state and output
        meta = run.metadata
        if owner:
            _mark_running(run)
        db.store_run(_record(run, masker), meta.uid, meta.project, meta.iteration)
        if self._abort.is_set():
            return self._finalize(run, db, None, "aborted", empty(masker))
        try:
            proc, cookie = self._start(argv, env)
        except OSError as exc:
            return self._finalize(run, db, None, f"cannot start {argv[0]!r}: {exc}", empty(masker))
        with self._live_lock:
            self._live[proc.pid] = (proc, cookie)
        pump = Pump(proc.stdout, self._watch, (db, meta) if owner else None, masker)
        try:
            if self._abort.is_set():  # Ctrl-C landed while this child was starting
                raise KeyboardInterrupt
            reason = self._wait(proc, cookie, run.spec.timeout)
        except KeyboardInterrupt as exc:
            self._abort.set()
            _proctree.terminate(proc, cookie, self.kill_grace)
            pump.join()
            self._finalize(run, db, proc.returncode, "aborted", pump, exc)
            raise
        finally:
            with self._live_lock:
                self._live.pop(proc.pid, None)
        # what the child left running (a forked child's group too: its forks lack the cookie)
        if not _warm.left_nothing(proc):
            _proctree.terminate(None, cookie, self.kill_grace, group=getattr(proc, "group", None))
        pump.join()
        code = proc.returncode
        if self._abort.is_set():
            reason = "aborted"
        elif getattr(proc, "lost", False):  # its exit code never came: trust a completed record
            code = None
            if _read_back(run, db)[0].state != "completed":
                reason = "the warm worker that forked this child died; its exit status is unknown"
        return self._finalize(run, db, code, reason, pump)

    def _start(self, argv: list[str], env: dict[str, str]) -> tuple[Any, str]:
        """Start a child: forked from the sweep's warm worker when there is one, else spawned."""
        warm = self._warm
        if warm is not None and warm.usable and not _warm.unsafe_reason(argv, self.python, ""):
            try:
                return warm.start(argv, env, self.cwd)
            except OSError:
                pass  # the worker is gone: this child starts as a fresh interpreter
        return _proctree.start(
            argv,
            env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def _wait(self, proc: subprocess.Popen, cookie: str, timeout: float | None) -> str:
        try:
            proc.wait(timeout=timeout or None)
        except subprocess.TimeoutExpired:
            _proctree.terminate(proc, cookie, self.kill_grace)
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

    def _child_env(self, run: RunObject, db: RunDB) -> dict[str, str]:
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
        self,
        run: RunObject,
        db: RunDB,
        code: int | None,
        reason: str,
        pump: Pump,
        interrupt: BaseException | None = None,
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
            error = "" if state == "completed" else error or _interrupt.reason(interrupt)
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
            # the child's own log lacks output it had not flushed: keep the parent's copy (an
            # iteration's log is its sweep's, shared with the parent and siblings: never replaced)
            pump.store_all(db, meta, replace=(crashed or not started) and not meta.iteration)
        else:
            pump.discard()
        if error and error != final.status.error:
            cut = "\n" if pump.mid_line else ""  # the child died mid-line
            db.store_log(meta.uid, meta.project, log_bytes(pump.mask(f"{cut}{error}\n")))
        final.status.state = state
        final.status.error = pump.mask(error) if error else ""
        final.status.exit_code = code
        final.status.start_time = final.status.start_time or run.status.start_time or now_iso()
        finish_time_fields(final)
        db.store_run(_record(final, pump._masker), meta.uid, meta.project, meta.iteration)
        return final

    # many children ----------------------------------------------------------------------------
    def _execute_many(
        self, runs: Iterable[RunObject], handler: Any, db: RunDB, parallel: int
    ) -> Iterator[RunObject]:
        """Run iterations as a pool of ``parallel`` children; Ctrl-C ends every live child tree.

        The children fork from a warm worker (see :mod:`~mlflowlet.runtimes._warm`) where that is
        safe, else each starts as a fresh interpreter.
        """
        pool = _interrupt.DaemonPool(max(1, parallel), "mlflowlet-child")
        pending: set[Future] = set()
        runs = iter(runs)
        first = next(runs, None)
        if first is None:
            return
        self._warm = self._warm_worker(first, handler, db)
        try:
            # pulled lazily, so a stop condition stops new launches
            for run in itertools.chain([first], runs):
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
            wait(pending, timeout=self.kill_grace + 2)  # their runs are recorded aborted
            raise
        finally:
            pool.shutdown(wait=False)
            warm, self._warm = self._warm, None
            if warm is not None:
                warm.close()

    def _warm_worker(self, run: RunObject, handler: Any, db: RunDB) -> _warm.WarmWorker | None:
        """Start the sweep's warm worker; None where its children must be fresh interpreters."""
        argv = self._child_argv(run, handler)
        self.warm_reason = _warm.unsafe_reason(argv, self.python, run.spec.mode)
        if self.warm_reason:
            return None
        files = [os.path.join(self.cwd or "", self.argv[0])] if self.argv[0].endswith(".py") else []
        try:
            env = self._child_env(run, db)
            worker = _warm.WarmWorker(argv, env, self.cwd, files, self.kill_grace)
        except OSError as exc:
            self.warm_reason = f"the warm worker did not start ({exc})"
            return None
        self.warm_reason = worker.why
        return worker if worker.usable else None

    def _stop_all(self) -> None:
        """End every live child's process tree (in parallel: one grace period for all)."""
        with self._live_lock:
            live = list(self._live.values())
        threads = [
            threading.Thread(target=_proctree.terminate, args=(proc, cookie, self.kill_grace))
            for proc, cookie in live
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _read_back(run: RunObject, db: RunDB) -> tuple[RunObject, str]:
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


def _db_location(db: RunDB) -> str:
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
    from .._masking import masked

    return masked(run.to_dict(), masker.mask)


def _as_arg(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _substitute(arg: str, params: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _as_arg(params[m[1]]) if m[1] in params else m[0], arg)
