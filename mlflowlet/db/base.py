"""The run DB interface every backend implements (SQLite, the HTTP client of the server)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .lists import ArtifactList, RunList


class RunDB(ABC):
    """Stores runs, artifacts, logs, metrics and lineage.

    Backends implement the abstract methods; :meth:`commit_run` has a default built on them that a
    backend may override to write everything in one transaction.
    """

    #: True once :meth:`close` was called (a run recorded here then reads back by :attr:`url`)
    closed: bool = False

    def connect(self) -> RunDB:
        """Return self, connected (for ``get_run_db(...).connect()``)."""
        return self

    @property
    def url(self) -> str:
        """Where this DB lives, as ``get_run_db(url)`` accepts it (empty when unknown)."""
        return ""

    @property
    def artifact_root(self) -> str:
        """Default root directory or URL for artifacts of runs recorded here."""
        return ""

    # runs -----------------------------------------------------------------------------------
    @abstractmethod
    def store_run(self, run: dict[str, Any], uid: str, project: str = "", iter: int = 0) -> None:
        """Insert or replace a run."""

    @abstractmethod
    def read_run(self, uid: str, project: str = "", iter: int = 0) -> dict[str, Any]:
        """Return a run as a dict; raises ``NotFoundError``."""

    @abstractmethod
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
        """Return a ``RunList`` of the runs that match every filter given.

        ``last`` caps the count; ``offset`` skips that many matches first (one page of
        ``last`` runs from ``offset``).
        """

    def resolve_dead_runs(self) -> list[dict[str, Any]]:
        """Record ``running`` runs whose process is gone as ``error``; return them.

        Same host: the recorded process (pid and start time) no longer runs; another host: no
        heartbeat for ``heartbeat_timeout`` seconds. The error reads ``process died (pid N on
        HOST, last heartbeat T)``; a DB that cannot be written keeps its rows, and the runs are
        returned resolved all the same. SQL backends do it on open, on ``read_run`` and on
        ``list_runs`` (see ``_owner.py``); a server client leaves it to the server.
        """
        return []

    def check_integrity(self) -> list[str]:
        """Check the stored data for damage (``mlflowlet doctor``); return the problems found.

        Raises:
            ConfigError: this backend cannot be checked from here.
        """
        raise ConfigError(
            f"{type(self).__name__} cannot be checked from here; run `mlflowlet doctor` where "
            "the run DB itself is reachable (the SQLite file or the PostgreSQL URL)"
        )

    @abstractmethod
    def del_run(self, uid: str, project: str = "", iter: int | None = None) -> None:
        """Delete a run (all its iterations unless ``iter`` is given)."""

    @abstractmethod
    def del_runs(
        self,
        name: str = "",
        project: str = "",
        labels: Any = None,
        state: str = "",
        days_ago: int = 0,
    ) -> int:
        """Delete the runs matching the filter; refuses an empty filter. Returns the count."""

    def update_run(
        self, updates: dict[str, Any], uid: str, project: str = "", iter: int = 0
    ) -> None:
        """Apply dotted-key updates (``{'status.state': 'error'}``) to a stored run."""
        run = apply_updates(self.read_run(uid, project, iter), updates)
        self.store_run(run, uid, project or run.get("metadata", {}).get("project", ""), iter)

    # artifacts ------------------------------------------------------------------------------
    @abstractmethod
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
        """Store an artifact version and move the ``latest`` tag (and ``tag``) to it."""

    @abstractmethod
    def read_artifact(
        self,
        key: str,
        tag: str = "",
        iter: int | None = None,
        project: str = "",
        uid: str | None = None,
    ) -> dict[str, Any]:
        """Return an artifact version by tag (default ``latest``) or uid."""

    @abstractmethod
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
        """Return an ``ArtifactList``; ``tag=''`` latest versions, ``'*'`` every version.

        ``iter`` keeps the versions of one hyper-parameter iteration (0: plain runs and a sweep's
        parent, whose versions link to its best iteration's).

        ``name`` selects keys: ``'ch'`` those starting with ``ch``, ``'~text'`` those
        containing ``text`` (any case), ``'=chart.html'`` exactly that key.

        ``offset``/``limit`` return one page (``limit`` 0: to the end).
        """

    @abstractmethod
    def del_artifact(
        self,
        key: str,
        tag: str = "",
        project: str = "",
        uid: str | None = None,
        iter: int | None = None,
    ) -> int:
        """Delete one artifact version (or every version of ``key`` when neither is given).

        With ``uid``, ``iter`` keeps the deletion to that iteration's record (a sweep parent's
        link shares its version uid with the best iteration's record).
        """

    @abstractmethod
    def del_artifacts(
        self, name: str = "", project: str = "", tag: str = "", labels: Any = None
    ) -> int:
        """Delete the artifacts matching the filter (``name``: the exact key, or ``~text``)."""

    @abstractmethod
    def list_artifact_tags(self, project: str = "") -> list[str]:
        """Return the distinct artifact tags of a project."""

    # logs and metrics -----------------------------------------------------------------------
    @abstractmethod
    def store_log(
        self, uid: str, project: str = "", body: bytes = b"", append: bool = True
    ) -> None:
        """Append (or replace) a run's captured output."""

    @abstractmethod
    def get_log(self, uid: str, project: str = "", offset: int = 0, size: int = 0) -> bytes:
        """Return a run's captured output from ``offset`` (``size`` 0 means to the end)."""

    @abstractmethod
    def store_metrics(
        self, uid: str, project: str, iter: int, rows: Iterable[tuple[Any, ...]]
    ) -> None:
        """Append metric rows ``(key, step, value, time)``."""

    @abstractmethod
    def get_metrics(
        self, uid: str, key: str | None = None, iter: int = 0, project: str = ""
    ) -> list[dict[str, Any]]:
        """Return metric rows as dicts ``key, step, value, time``."""

    # lineage ---------------------------------------------------------------------------------
    @abstractmethod
    def store_lineage(self, edges: Iterable[dict[str, Any]]) -> None:
        """Store lineage edges (producer run, output, artifact uri/hash, consumer run, param)."""

    @abstractmethod
    def list_lineage(
        self,
        run_uid: str | None = None,
        artifact_key: str | None = None,
        pipeline_uid: str | None = None,
        upstream: bool = False,
        downstream: bool = False,
    ) -> list[dict[str, Any]]:
        """Return lineage edges touching a run or artifact; walk the graph when asked."""

    # one-shot commit ------------------------------------------------------------------------
    def commit_run(
        self,
        run: dict[str, Any],
        artifacts: Iterable[dict[str, Any]] = (),
        metrics: Iterable[tuple[Any, ...]] = (),
        log: bytes = b"",
    ) -> None:
        """Write a run with its new artifacts, metric rows and log output at once."""
        meta = run["metadata"]
        uid, project, it = meta["uid"], meta.get("project", ""), meta.get("iteration", 0)
        for art in artifacts:
            self.store_artifact(
                art["key"],
                art,
                uid=art.get("uid"),
                iter=it,
                tag=art.get("tag") or "",
                project=project,
                tree=art.get("tree", uid),
            )
        rows = list(metrics)
        if rows:
            self.store_metrics(uid, project, it, rows)
        if log:
            self.store_log(uid, project, log)
        self.store_run(run, uid, project, it)

    def store_runs(
        self, runs: Iterable[dict[str, Any]], lineage: Iterable[dict[str, Any]] = ()
    ) -> None:
        """Store whole runs (keyed by their metadata) and lineage edges at once."""
        for run in runs:
            meta = run["metadata"]
            self.store_run(run, meta["uid"], meta.get("project", ""), meta.get("iteration", 0))
        edges = list(lineage)
        if edges:
            self.store_lineage(edges)


def require_filter(call: str, what: str, **filters: Any) -> None:
    """Refuse a bulk delete with no filter, naming the call and the filters it takes."""
    if not any(filters.values()):
        raise ConfigError(
            f"{call}() needs a filter ({', '.join(filters)}); refusing to delete every {what}"
        )


def exact_key(name: str) -> str:
    """Return the ``list_artifacts`` name filter that matches key ``name`` exactly.

    ``~text`` and ``=key`` pass as they are; a plain name gets ``=`` (deletes never match by
    prefix).
    """
    return name if not name or name.startswith(("=", "~")) else f"={name}"


def log_window(project: Any, offset: Any, size: Any) -> tuple[str, int, int]:
    """Accept ``get_log(uid, offset, size)`` as well as ``get_log(uid, project, offset, size)``.

    The issue's form puts the offset second; MLRun's puts the project there. An int in the
    project slot is the offset.
    """
    if isinstance(project, int) and not isinstance(project, bool):
        return "", int(project), int(offset or 0)
    return project or "", int(offset or 0), int(size or 0)


def parse_label_filters(labels: Any) -> list[tuple[str, str, str | None]]:
    """Turn label filters into ``(op, key, value)``; every filter must hold.

    Grammar of one filter (a string)::

        KEY            the label KEY is set (any value)
        KEY=VALUE      the label equals VALUE
        KEY!=VALUE     the label is not VALUE (or not set)
        KEY~=TEXT      the label contains TEXT

    The filter splits at its **first** ``=``: the key is what comes before it (a ``!`` or
    ``~`` right before that ``=`` belongs to the operator) and the value is everything after
    it, verbatim, so a value may contain ``=``, ``!=`` or ``~=``: ``k=a!=b`` means "label ``k``
    equals ``a!=b``". A key is stripped of surrounding spaces and cannot contain ``=``.

    Args:
        labels: one filter, a list of filters, or a dict (each key equal to its value).

    Raises:
        ConfigError: a filter without a key, or a dict key containing ``=``.
    """
    if not labels:
        return []
    if isinstance(labels, dict):
        for key in labels:
            if "=" in str(key) or not str(key).strip():
                raise ConfigError(f"label filter key {str(key)!r} must be non-empty without '='")
        return [("=", str(k).strip(), str(v)) for k, v in labels.items()]
    if isinstance(labels, str):
        labels = [labels]
    return [_one_label_filter(str(item)) for item in labels]


def _one_label_filter(item: str) -> tuple[str, str, str | None]:
    at = item.find("=")
    if at < 0:
        key, op, value = item, "exists", None
    elif at > 0 and item[at - 1] in "!~":
        key, op, value = item[: at - 1], item[at - 1 : at + 1], item[at + 1 :]
    else:
        key, op, value = item[:at], "=", item[at + 1 :]
    if not key.strip():
        raise ConfigError(f"label filter {item!r} has no key; use k=v, k!=v, k~=v or k")
    return op, key.strip(), value


def apply_updates(run: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """Return ``run`` with dotted-key ``updates`` (``{'status.state': 'error'}``) applied."""
    for dotted, value in updates.items():
        target = run
        *path, last = dotted.split(".")
        for part in path:
            target = target.setdefault(part, {})
        target[last] = value
    return run
