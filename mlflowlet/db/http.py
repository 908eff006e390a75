"""The run DB client of ``mlflowlet server``: the same interface as the SQLite DB, over HTTP.

``get_run_db('http://host:port')`` returns an :class:`HTTPRunDB`. One pooled ``httpx.Client``
is shared per server URL in a process; requests that could not reach the server (connection
refused or reset, connect timeout) are retried with exponential backoff, bounded in count and
time; a ``MLFLOWLET_API_TOKEN`` is sent as a bearer token and never logged.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from .._text import log_bytes
from ..errors import (
    ConfigError,
    NotFoundError,
    RunDBError,
)
from ._commitparts import DEFAULT_MAX_BODY, ENVELOPE, SMALL_BODY, commit_in_parts
from ._httpclient import _httpx, shared_client
from ._json import dumps, loads
from .base import RunDB, log_window, parse_label_filters, require_filter

if TYPE_CHECKING:
    from .lists import ArtifactList, RunList

#: rows asked for per request when listing (the server's largest page)
PAGE = 10_000


class HTTPRunDB(RunDB):
    """Run DB client talking to ``mlflowlet server``.

    Args:
        url: the server URL, ``http(s)://host:port`` (a path prefix is kept).
        token: the bearer token (default ``MLFLOWLET_API_TOKEN``).
        timeout: seconds for each request (connect: at most 5).
        retries: extra attempts after a connection error.
        backoff: first retry delay in seconds (doubled each time, with jitter).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.1,
    ) -> None:
        if "://" not in url:
            raise ConfigError(f"server URL {url!r} needs a scheme: http://host:port")
        self._url = url.rstrip("/")
        if token is None:
            from ..settings import get_settings

            token = get_settings().api_token
        self._headers = {"authorization": f"Bearer {token}"} if token else {}
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._client = shared_client(self._url, timeout)
        self._root: str | None = None
        self._max_body: int | None = None

    @property
    def url(self) -> str:
        """The server URL (``get_run_db`` accepts it again)."""
        return self._url

    def __repr__(self) -> str:  # never shows the token
        return f"HTTPRunDB({self._url!r})"

    # transport --------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw: Any) -> Any:
        httpx = _httpx()
        params = kw.pop("params", None)
        if params:
            kw["params"] = {k: v for k, v in params.items() if v is not None and v != ""}
        extra = kw.pop("headers", None) or {}
        if "json" in kw:  # strict JSON, NaN/infinities tagged (mlflowlet/db/_json.py)
            kw["content"] = dumps(kw.pop("json")).encode()
            extra = {"content-type": "application/json", **extra}
        delay, attempt = self.backoff, 0
        while True:
            try:
                resp = self._client.request(
                    method, "/api/v1" + path, headers={**self._headers, **extra}, **kw
                )
                break
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                attempt += 1
                if attempt > self.retries:
                    raise RunDBError(
                        f"cannot reach the mlflowlet server at {self._url} after {attempt} "
                        f"attempt(s): {type(exc).__name__}: {exc}; is `mlflowlet server` "
                        "running there?"
                    ) from None
                time.sleep(delay * (1 + random.random() / 2))  # backoff between retries
                delay *= 2
            except httpx.TimeoutException as exc:
                raise RunDBError(
                    f"the mlflowlet server at {self._url} did not answer {method} {path} within "
                    f"{self.timeout:g}s ({type(exc).__name__})"
                ) from None
        if resp.status_code >= 400:
            self._raise(resp, method, path)
        return resp

    def _raise(self, resp: Any, method: str, path: str) -> None:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        text = detail if isinstance(detail, str) else str(detail)
        code = resp.status_code
        if code == 404:
            raise NotFoundError(text)
        if code == 401:
            raise RunDBError(
                f"the mlflowlet server at {self._url} refused the request (401: {text}); set "
                "MLFLOWLET_API_TOKEN to the server's token"
            )
        if code in (400, 413, 416, 422):
            raise ConfigError(f"{method} {path}: {text}")
        raise RunDBError(
            f"the mlflowlet server at {self._url} failed on {method} {path} ({code}): {text}"
        )

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return loads(self._request(method, path, **kw).content)

    @property
    def artifact_root(self) -> str:
        """The server's artifact root (asked once)."""
        if self._root is None:
            self._root = self.version().get("artifact_root", "")
        return self._root

    @property
    def max_body(self) -> int:
        """The largest request body the server accepts, in bytes (asked once)."""
        if self._max_body is None:
            self._max_body = int(self.version().get("max_body") or DEFAULT_MAX_BODY)
        return self._max_body

    def record_limit(self) -> int:
        """Return the largest run record (JSON bytes) one commit request can carry."""
        return self.max_body - ENVELOPE

    def version(self) -> dict[str, Any]:
        """Return the server's version document."""
        return cast(dict[str, Any], self._json("GET", "/version"))

    # runs -------------------------------------------------------------------------------------
    def store_run(self, run: dict[str, Any], uid: str, project: str = "", iter: int = 0) -> None:
        """Insert or replace a run."""
        self._request(
            "PUT", f"/runs/{_q(uid)}", json=run, params={"project": project, "iter": iter}
        )

    def read_run(self, uid: str, project: str = "", iter: int = 0) -> dict[str, Any]:
        """Return a run; raises ``NotFoundError``."""
        return cast(
            dict[str, Any],
            self._json("GET", f"/runs/{_q(uid)}", params={"project": project, "iter": iter}),
        )

    def update_run(
        self, updates: dict[str, Any], uid: str, project: str = "", iter: int = 0
    ) -> None:
        """Apply dotted-key updates on the server."""
        self._request(
            "PATCH", f"/runs/{_q(uid)}", json=updates, params={"project": project, "iter": iter}
        )

    def list_runs(
        self,
        name: str = "",
        uid: str | None = None,
        project: str = "",
        labels: Any = None,
        state: str = "",
        sort: bool = True,
        last: int = 0,
        iter: bool = False,
        offset: int = 0,
        **filters: Any,
    ) -> RunList:
        """Return a ``RunList`` of the runs matching every filter (fetched page by page)."""
        from .lists import RunList

        unknown = set(filters) - {"parent_uid", "pipeline_uid"}
        if unknown:
            raise ConfigError(f"unknown run filter(s) {sorted(unknown)}")
        params = {
            "name": name,
            "uid": uid,
            "project": project,
            "state": state,
            "sort": sort,
            "iter": iter,
            "label": _labels(labels),
            **filters,
        }
        rows = self._pages("/runs", "runs", params, offset, last)
        return RunList(_unique(rows, ("project", "uid", "iteration"), "metadata"))

    def _pages(
        self, path: str, field: str, params: dict[str, Any], offset: int, last: int
    ) -> list[dict[str, Any]]:
        """Fetch every page of a list endpoint from ``offset`` (``last`` caps the count)."""
        out: list[dict[str, Any]] = []
        start: int | None = offset
        while start is not None and (not last or len(out) < last):
            size = min(PAGE, last - len(out)) if last else PAGE
            page = self._json("GET", path, params={**params, "offset": start, "limit": size})
            out += page[field]
            start = page.get("next_offset")  # absent from servers without paging: one page
        return out[:last] if last else out

    def del_run(self, uid: str, project: str = "", iter: int | None = None) -> None:
        """Delete a run (every iteration unless ``iter`` is given)."""
        self._request("DELETE", f"/runs/{_q(uid)}", params={"project": project, "iter": iter})

    def del_runs(
        self,
        name: str = "",
        project: str = "",
        labels: Any = None,
        state: str = "",
        days_ago: int = 0,
    ) -> int:
        """Delete the runs matching the filter; refuses an empty filter."""
        require_filter(
            "del_runs",
            "run",
            name=name,
            project=project,
            labels=labels,
            state=state,
            days_ago=days_ago,
        )
        params = {
            "name": name,
            "project": project,
            "label": _labels(labels),
            "state": state,
            "days_ago": days_ago or None,
        }
        return cast(int, self._json("DELETE", "/runs", params=params)["deleted"])

    # artifacts --------------------------------------------------------------------------------
    def store_artifact(
        self,
        key: str,
        artifact: dict[str, Any],
        uid: str | None = None,
        iter: int | None = None,
        tag: str = "",
        project: str = "",
        tree: str = "",
    ) -> None:
        """Store an artifact version and move ``latest`` (and ``tag``) to it."""
        params = {"uid": uid, "iter": iter, "tag": tag, "project": project, "tree": tree}
        self._request("PUT", f"/artifacts/{_q(key, '/')}", json=artifact, params=params)

    def read_artifact(
        self,
        key: str,
        tag: str = "",
        iter: int | None = None,
        project: str = "",
        uid: str | None = None,
    ) -> dict[str, Any]:
        """Return an artifact version by tag (default ``latest``) or uid."""
        params = {"tag": tag, "iter": iter, "project": project, "uid": uid}
        return cast(dict[str, Any], self._json("GET", f"/artifacts/{_q(key, '/')}", params=params))

    def list_artifacts(
        self,
        name: str = "",
        project: str = "",
        tag: str = "",
        labels: Any = None,
        kind: str | None = None,
        since: str | None = None,
        until: str | None = None,
        tree: str | None = None,
        iter: int | None = None,
        offset: int = 0,
        limit: int = 0,
    ) -> ArtifactList:
        """Return an ``ArtifactList`` (``name``: a key prefix, ``~text`` or ``=key``; paged)."""
        from .lists import ArtifactList

        params = {
            "name": name,
            "project": project,
            "tag": tag,
            "label": _labels(labels),
            "kind": kind,
            "since": since,
            "until": until,
            "tree": tree,
            "iter": iter,
        }
        rows = self._pages("/artifacts", "artifacts", params, offset, limit)
        return ArtifactList(_unique(rows, ("project", "key", "uid", "iteration")))

    def del_artifact(
        self,
        key: str,
        tag: str = "",
        project: str = "",
        uid: str | None = None,
        iter: int | None = None,
    ) -> int:
        """Delete one artifact version (or every version of ``key``)."""
        params = {"tag": tag, "project": project, "uid": uid, "iter": iter}
        return cast(
            int, self._json("DELETE", f"/artifacts/{_q(key, '/')}", params=params)["deleted"]
        )

    def del_artifacts(
        self, name: str = "", project: str = "", tag: str = "", labels: Any = None
    ) -> int:
        """Delete the artifacts matching the filter; refuses an empty filter."""
        require_filter(
            "del_artifacts", "artifact", name=name, project=project, tag=tag, labels=labels
        )
        params = {"name": name, "project": project, "tag": tag, "label": _labels(labels)}
        return cast(int, self._json("DELETE", "/artifacts", params=params)["deleted"])

    def list_artifact_tags(self, project: str = "") -> list[str]:
        """Return the distinct artifact tags."""
        return cast(
            list[str], self._json("GET", "/artifact-tags", params={"project": project})["tags"]
        )

    def download(self, path: str, start: int = 0, end: int | None = None) -> bytes:
        """Return the bytes of a file under the server's artifact root (optionally a range)."""
        headers = {}
        if start or end is not None:
            headers["range"] = f"bytes={start}-{'' if end is None else end}"
        return cast(bytes, self._request("GET", f"/files/{_q(path, '/')}", headers=headers).content)

    # logs and metrics -------------------------------------------------------------------------
    def store_log(
        self, uid: str, project: str = "", body: bytes = b"", append: bool = True
    ) -> None:
        """Append (or replace) a run's captured output (in parts below the server's limit)."""
        if isinstance(body, str):
            body = log_bytes(body)
        size = max(len(body), 1) if len(body) <= SMALL_BODY else self.max_body
        for at in range(0, max(len(body), 1), size):
            self._request(
                "POST",
                f"/logs/{_q(uid)}",
                content=body[at : at + size],
                params={"project": project, "append": append or at > 0},
                headers={"content-type": "application/octet-stream"},
            )

    def get_log(self, uid: str, project: str = "", offset: int = 0, size: int = 0) -> bytes:
        """Return a run's captured output from ``offset`` (``size`` 0 means to the end)."""
        project, offset, size = log_window(project, offset, size)
        params = {"project": project, "offset": offset or None, "size": size or None}
        return cast(bytes, self._request("GET", f"/logs/{_q(uid)}", params=params).content)

    def store_metrics(
        self, uid: str, project: str, iter: int, rows: Iterable[tuple[Any, ...]]
    ) -> None:
        """Append metric rows ``(key, step, value, time)``."""
        self._request(
            "POST",
            f"/metrics/{_q(uid)}",
            json={"rows": [list(r) for r in rows]},
            params={"project": project, "iter": iter},
        )

    def get_metrics(
        self, uid: str, key: str | None = None, iter: int = 0, project: str = ""
    ) -> list[dict[str, Any]]:
        """Return metric rows as dicts ``key, step, value, time``."""
        params = {"key": key, "iter": iter, "project": project}
        return cast(
            list[dict[str, Any]], self._json("GET", f"/metrics/{_q(uid)}", params=params)["metrics"]
        )

    # lineage ----------------------------------------------------------------------------------
    def store_lineage(self, edges: Iterable[dict[str, Any]]) -> None:
        """Store lineage edges."""
        edges = list(edges)
        if edges:
            self._request("POST", "/lineage", json={"edges": edges})

    def list_lineage(
        self,
        run_uid: str | None = None,
        artifact_key: str | None = None,
        pipeline_uid: str | None = None,
        upstream: bool = False,
        downstream: bool = False,
    ) -> list[dict[str, Any]]:
        """Return lineage edges touching a run or artifact; walk the graph when asked."""
        params = {
            "run_uid": run_uid,
            "artifact_key": artifact_key,
            "pipeline_uid": pipeline_uid,
            "upstream": upstream or None,
            "downstream": downstream or None,
        }
        return self._pages("/lineage", "edges", params, 0, 0)

    def pipeline_graph(self, uid: str, project: str = "") -> dict[str, Any]:
        """Return a pipeline run's DAG (``pipeline``, ``nodes``, ``edges``)."""
        return cast(
            dict[str, Any],
            self._json("GET", f"/pipelines/{_q(uid)}/graph", params={"project": project}),
        )

    # one-shot commit --------------------------------------------------------------------------
    def commit_run(
        self,
        run: dict[str, Any],
        artifacts: Iterable[dict[str, Any]] = (),
        metrics: Iterable[tuple[Any, ...]] = (),
        log: bytes = b"",
    ) -> None:
        """Write a run with its new artifacts, metric rows and log chunk in one request.

        A body over the server's limit (:attr:`max_body`) is split: the log goes in several
        requests, in order, each with the run record (the first also with the artifact and
        metric rows), so output never meets the limit (see ``_commitparts.py``).

        Raises:
            RecordTooLargeError: the record with its rows is over the limit alone (nothing sent).
            PartlyWrittenError: a request after the first failed; ``written`` log bytes are stored.
        """
        if isinstance(log, str):
            log = log_bytes(log)
        commit_in_parts(self, run, list(artifacts), [list(r) for r in metrics], log)

    def send_commit(self, uid: str, body: bytes) -> None:
        """POST one commit request body (JSON bytes) for run ``uid``."""
        headers = {"content-type": "application/json"}
        self._request("POST", f"/runs/{_q(uid)}/commit", content=body, headers=headers)


def _q(part: str, safe: str = "") -> str:
    return quote(str(part), safe=safe)


def _labels(labels: Any) -> list[str] | None:
    if not labels:
        return None
    parse_label_filters(labels)  # refuse here what the server would read another way
    if isinstance(labels, dict):
        return [f"{k}={v}" for k, v in labels.items()]
    if isinstance(labels, str):
        return [labels]
    return list(labels)


def _unique(
    rows: list[dict[str, Any]], keys: tuple[str, ...], part: str = ""
) -> list[dict[str, Any]]:
    """Drop repeats of a record (a write between two page requests can shift a row over)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for row in rows:
        ident = tuple((row.get(part) or {}).get(k) if part else row.get(k) for k in keys)
        if ident not in seen:
            seen.add(ident)
            out.append(row)
    return out
