"""``store://artifacts/<project>/<key>[#iter][:tag][@uid]`` references, via the run DB."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from mlflowlet.datastore.base import DataStore
from mlflowlet.errors import ConfigError, DataNotFoundError, DataStoreError

if TYPE_CHECKING:
    from ..db.base import RunDB

PREFIX = "store://"
KINDS = ("artifacts",)


@dataclass(frozen=True)
class StoreRef:
    """The parts of a ``store://`` URL.

    Attributes:
        kind: what is referenced; only ``"artifacts"`` today.
        project: the project name.
        key: the artifact key (may contain ``/``).
        tag: the tag; ``"latest"`` when neither a tag nor a uid is given.
        uid: an artifact version uid, or the uid of the run that logged it (``@uid``), or None.
        iteration: the iteration (``#n``), or None for the DB's default.
    """

    kind: str
    project: str
    key: str
    tag: str = "latest"
    uid: str | None = None
    iteration: int | None = None


def parse_store_url(url: str) -> StoreRef:
    """Split a ``store://`` URL into a :class:`StoreRef`.

    Raises:
        ConfigError: the URL is not ``store://artifacts/<project>/<key>...``.
    """
    if not url.lower().startswith(PREFIX):
        raise ConfigError(f"not a store:// URL: {url!r}")
    kind, _, rest = url[len(PREFIX) :].partition("/")
    project, _, ref = rest.partition("/")
    if kind not in KINDS or not project or not ref:
        raise ConfigError(
            f"bad store URL {url!r}: expected store://artifacts/<project>/<key>[:tag|@uid]"
        )
    head, _, last = ref.rpartition("/")
    last, _, uid = last.partition("@")
    last, _, tag = last.partition(":")
    last, _, iteration = last.partition("#")
    if not last or (iteration and not iteration.isdigit()):
        raise ConfigError(f"bad store URL {url!r}: expected <key>[#iter][:tag][@uid]")
    return StoreRef(
        kind=kind,
        project=project,
        key=f"{head}/{last}" if head else last,
        tag=tag or ("" if uid else "latest"),
        uid=uid or None,
        iteration=int(iteration) if iteration else None,
    )


class StoreRefStore(DataStore):
    """Reads artifact references by looking up their real URI in the run DB.

    Args:
        secrets: passed on to the store of the resolved URI.
        db: a run DB (anything with ``read_artifact(key, tag=, project=, uid=)``); when
            None, :func:`mlflowlet.db.get_run_db` is used on first need.
    """

    def __init__(self, secrets: Any = None, db: RunDB | None = None) -> None:
        super().__init__(secrets)
        self.db = db

    def resolve(self, url: str) -> tuple[dict[str, Any], str]:
        """Return ``(artifact record, real URI)`` for a ``store://`` URL.

        Raises:
            DataNotFoundError: the run DB has no such artifact version.
            DataStoreError: the record has no ``uri``.
        """
        ref = parse_store_url(url)
        if self.db is None:
            from mlflowlet.db import get_run_db

            self.db = get_run_db()
        kwargs: dict[str, Any] = {"tag": ref.tag, "project": ref.project, "uid": ref.uid}
        if ref.iteration is not None:
            kwargs["iter"] = ref.iteration
        try:
            meta: dict[str, Any] | None = self.db.read_artifact(ref.key, **kwargs)
        except KeyError:  # NotFoundError is a KeyError
            meta = self._by_producer(ref)
            if meta is None:
                raise DataNotFoundError(f"no artifact '{url}' in the run DB") from None
        if not meta or not meta.get("uri"):
            raise DataStoreError(f"artifact '{url}' has no uri in the run DB")
        return dict(meta), str(meta["uri"])

    def _by_producer(self, ref: StoreRef) -> dict[str, Any] | None:
        """Return the newest version of ``ref.key`` logged by run ``ref.uid`` (``@<run uid>``)."""
        lister = getattr(self.db, "list_artifacts", None)
        if not ref.uid or lister is None:
            return None
        found = [
            dict(art)
            for art in lister(name=f"={ref.key}", project=ref.project, tag="*", tree=ref.uid)
            if ref.iteration is None or art.get("iteration") == ref.iteration
        ]
        return max(found, key=lambda art: art.get("updated") or "") if found else None

    def _target(self, url: str) -> tuple[DataStore, str]:
        from mlflowlet.datastore.registry import get_store

        _, real = self.resolve(url)
        return get_store(real, self.secrets), real

    def get(self, url: str, size: int | None = None, offset: int = 0) -> bytes:
        """Read the referenced artifact."""
        store, real = self._target(url)
        return store.get(real, size=size, offset=offset)

    def put(self, url: str, data: bytes) -> None:
        """Refuse: artifact versions are immutable; log a new version instead."""
        raise DataStoreError(f"cannot write '{url}': store:// references are read-only")

    def upload(self, url: str, path: str) -> None:
        """Refuse: artifact versions are immutable; log a new version instead."""
        self.put(url, b"")

    def stat(self, url: str) -> dict[str, Any]:
        """Stat the referenced artifact."""
        store, real = self._target(url)
        return store.stat(real)

    def listdir(self, url: str) -> list[str]:
        """List the referenced location (for directory artifacts)."""
        store, real = self._target(url)
        return store.listdir(real)

    def open(self, url: str, mode: str = "rb") -> BinaryIO:
        """Open the referenced artifact for reading."""
        if mode != "rb":
            self.put(url, b"")
        store, real = self._target(url)
        return store.open(real, "rb")

    def download(self, url: str, path: str) -> None:
        """Copy the referenced artifact to ``path``."""
        store, real = self._target(url)
        store.download(real, path)
