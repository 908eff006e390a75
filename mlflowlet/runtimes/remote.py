"""The remote runtime: runs a task on an HTTP function (``mlflowlet serve``, Nuclio, MLRun style).

``new_runner('http://host:port')`` sends each run as JSON (never a pickle) to ``POST /`` and
records the run the function returns, with its artifacts, metric rows and log, in the caller's
run DB. Hyper-parameter iterations become concurrent requests, at most ``max_concurrency`` at
once. An unreachable endpoint, a timeout or an error answer ends the run in ``error`` with a
one-line reason, after a bounded number of connection retries.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .._text import log_bytes
from ..db._json import dumps, loads
from ..errors import ConfigError, MissingDependencyError
from ..model import TERMINAL_STATES, RunObject, now_iso
from ._claim import Claim
from .base import Runtime, _short_name

if TYPE_CHECKING:
    from ..db.base import RunDB

_clients: dict[tuple[int, str], Any] = {}
_lock = threading.Lock()


def _client(url: str) -> Any:
    try:
        import httpx
    except ImportError:
        raise MissingDependencyError("httpx", "server") from None
    key = (os.getpid(), url)
    with _lock:
        if key not in _clients:
            _clients[key] = httpx.Client(
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)
            )
        return _clients[key]


class RemoteRuntime(Runtime):
    """Runs tasks on a remote HTTP function.

    Args:
        command: the function URL, ``http(s)://host:port[/path]``.
        timeout: seconds to wait for one run's answer (a run's ``spec.timeout`` wins).
        connect_timeout: seconds to wait for a connection.
        retries: extra connection attempts when the endpoint refuses or is unreachable.
        max_concurrency: hyper-parameter iterations in flight at once.
        token: bearer token for the function (default ``MLFLOWLET_API_TOKEN``).
    """

    kind = "remote"

    def __init__(self, command: str = "", **options: Any) -> None:
        super().__init__(command, **options)
        if not command.startswith(("http://", "https://")):
            raise ConfigError(f"the remote runtime needs an http(s):// URL, got {command!r}")
        self.url = command
        self.timeout = float(self.options.pop("timeout", 600.0))
        self.connect_timeout = float(self.options.pop("connect_timeout", 5.0))
        self.retries = int(self.options.pop("retries", 2))
        self.max_concurrency = max(1, int(self.options.pop("max_concurrency", 8)))
        token = self.options.pop("token", None)
        if token is None:
            from ..settings import get_settings

            token = get_settings().api_token
        self._headers = {"authorization": f"Bearer {token}"} if token else {}

    def _prepare(self, task: Any, handler: Any, name: str, *rest: Any) -> RunObject:
        run = super()._prepare(task, handler, name, *rest)
        if not name and run.metadata.name == _short_name(self.command):
            path = self.url.split("://", 1)[1].partition("/")[2].strip("/")
            run.metadata.name = path.rsplit("/", 1)[-1] or "remote"
        return run

    def _default_parallel(self) -> int:  # type: ignore[override]
        return self.max_concurrency

    def _execute_many(
        self, runs: Iterable[RunObject], handler: Any, db: RunDB, parallel: int
    ) -> Iterator[RunObject]:
        """Send iterations as concurrent requests, never more than ``max_concurrency`` at once."""
        yield from super()._execute_many(runs, handler, db, min(parallel, self.max_concurrency))

    def _execute(self, run: RunObject, handler: Any, db: RunDB) -> RunObject:
        run.metadata.labels.setdefault("kind", "remote")
        run.status.state, run.status.start_time = "running", run.status.start_time or now_iso()
        if db is None:
            return self._answer(run, None)
        # owned by this process while it waits: a caller killed meanwhile leaves a run readers
        # resolve (ended error), as an in-process run's
        with Claim(run, db) as claim:
            return self._answer(run, claim.db_for_outcome)

    def _answer(self, run: RunObject, db: RunDB | None) -> RunObject:
        try:
            done, arts, rows, log = self._read_envelope(self._post(run))
        except _RemoteFailure as exc:
            return self._fail(run, db, str(exc))
        except KeyboardInterrupt as exc:  # Ctrl-C / SIGTERM while waiting: recorded aborted
            from .._interrupt import reason

            self._fail(run, db, reason(exc), "aborted")
            raise
        done.metadata.uid, done.metadata.iteration = run.uid, run.metadata.iteration
        done.metadata.project = done.metadata.project or run.metadata.project
        done.spec.parent_uid = run.spec.parent_uid
        if db is not None:
            db.commit_run(done.to_dict(), arts, rows, log)
        return done

    def _read_envelope(self, envelope: object) -> tuple[RunObject, list, list, bytes]:
        """Return the answered run, its artifact records, metric rows and log, checked.

        Raises:
            _RemoteFailure: the answer is not an ended run's envelope; one line naming what.
        """
        try:
            if not isinstance(envelope, dict):
                raise TypeError(f"a JSON {type(envelope).__name__}, not an object")
            done = RunObject.model_validate(envelope["run"])
            if done.status.state not in TERMINAL_STATES:
                raise ValueError(f"its run has not ended: state {done.status.state!r}")
            rows = [_metric_row(r) for r in envelope.get("metrics") or []]
            arts = envelope.get("artifacts") or []
            if not all(isinstance(a, dict) and isinstance(a.get("key"), str) for a in arts):
                raise ValueError("an artifact record without a 'key'")
            log = envelope.get("log") or ""
            if not isinstance(log, str):
                raise TypeError(f"its log is a {type(log).__name__}, not text")
        except (KeyError, TypeError, ValueError) as exc:
            errors = getattr(exc, "errors", None)  # pydantic's: name the first bad field
            if callable(errors):
                first = errors()[0]
                what = f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
            else:
                what = str(exc)
            raise _RemoteFailure(
                f"remote function {self.url} answered something that is not an ended run "
                f"({type(exc).__name__}: {what}); serve the handler with `mlflowlet serve`"
            ) from None
        return done, list(arts), rows, log_bytes(log)

    # transport --------------------------------------------------------------------------------
    def _post(self, run: RunObject) -> dict[str, Any]:
        import httpx

        client = _client(self.url)
        read = run.spec.timeout or self.timeout
        timeout = httpx.Timeout(read, connect=self.connect_timeout)
        body = run.to_dict()
        # inline secret values travel to the function (its context masks them in what it
        # records and answers), as they reach a subprocess or a Dask worker; never a run DB
        body["spec"]["secret_sources"] = [dict(s) for s in run.spec.secret_sources]
        content = dumps(body).encode()  # NaN/infinities tagged
        delay, attempt = 0.1, 0
        while True:
            try:
                resp = client.post(
                    self.url,
                    params={"envelope": "1"},
                    content=content,
                    headers={**self._headers, "content-type": "application/json"},
                    timeout=timeout,
                )
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                attempt += 1
                if attempt > self.retries:
                    raise _RemoteFailure(
                        f"remote function {self.url} is unreachable after {attempt} attempt(s) "
                        f"({type(exc).__name__}: {exc}); is `mlflowlet serve` running there?"
                    ) from None
                time.sleep(delay * (1 + random.random() / 2))  # backoff before reconnecting
                delay *= 2
            except httpx.TimeoutException:
                raise _RemoteFailure(
                    f"remote function {self.url} did not answer within "
                    f"{read:g}s (raise timeout= to wait longer)"
                ) from None
            except httpx.HTTPError as exc:
                raise _RemoteFailure(
                    f"remote function {self.url} failed: {type(exc).__name__}: {exc}"
                ) from None
        if resp.status_code != 200:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise _RemoteFailure(
                f"remote function {self.url} answered {resp.status_code}: {str(detail)[:500]}"
            )
        try:
            return loads(resp.content)
        except ValueError:
            raise _RemoteFailure(
                f"remote function {self.url} answered non-JSON: {resp.text[:200]!r}"
            ) from None

    def _fail(
        self, run: RunObject, db: RunDB | None, message: str, state: str = "error"
    ) -> RunObject:
        run.status.state, run.status.error = state, message
        run.status.end_time = run.status.last_update = now_iso()
        if db is not None:
            db.commit_run(run.to_dict(), (), (), log_bytes(message + "\n"))
        return run


def _metric_row(row: object) -> tuple:
    """Return a metric row ``(key, step, value, time)`` of an answer, or raise ValueError."""
    if not isinstance(row, list) or len(row) != 4 or not isinstance(row[0], str):
        raise ValueError(f"a metric row {str(row)[:80]} that is not [key, step, value, time]")
    return tuple(row)


class _RemoteFailure(Exception):
    """The request did not produce a run (unreachable, timeout, error answer)."""
