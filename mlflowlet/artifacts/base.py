"""The :class:`Artifact` record, the base of every artifact kind."""

from __future__ import annotations

import math
import sys
from typing import Any, ClassVar

from mlflowlet.errors import ArtifactError

_KINDS: dict[str, type[Artifact]] = {}
# Built-in kinds register when their module is imported; from_dict imports them on demand.
_KIND_MODULES = {
    "chart": "mlflowlet.artifacts.chart",
    "dataset": "mlflowlet.artifacts.dataset",
    "model": "mlflowlet.artifacts.model",
    "plot": "mlflowlet.artifacts.plot",
    "table": "mlflowlet.artifacts.table",
}


class Artifact:
    """A versioned output of a run: a file, page, table, chart, plot, dataset or model.

    The constructor describes what to store; :meth:`ArtifactManager.log` stores it and fills
    the record fields.

    Args:
        key: the artifact name within the run (a safe relative path, e.g. ``"plots/loss"``).
        body: the content: ``bytes``, ``str`` (UTF-8), ``dict``/``list`` (JSON) or a pandas
            DataFrame (CSV); None when ``local_path`` holds it.
        local_path: a local file to store instead of a body.
        target_path: where to store it: relative to the run's artifact path, or a URL.
        viewer: how a UI shows it (``"table"``, ``"chart"``, ``"web-app"``...).
        format: the file format (``"csv"``, ``"html"``...); also picks the file suffix.
        labels: string labels to filter by.
        tag: a version tag (``"latest"`` when none).
        kind: the artifact kind; subclasses set their own.

    Attributes:
        uri: where it was stored: an absolute local path or a URL.
        hash: sha256 hex digest of the stored bytes (None for linked remote objects).
        size: stored size in bytes.
        producer: ``{'uid', 'name', 'iteration', 'kind'}`` of the producing run.
        project: the project name.
        tree: the producing run's (or pipeline's) uid.
        iteration: the hyper-parameter iteration (0 for plain runs).
        updated: ISO 8601 UTC time it was logged.
        uid: the version id, stable for the same content from the same run and iteration.
        extra: kind-specific metadata (schema, preview, metrics...).
        mtime_ns: the stored local file's modification time (checked on every read).
        etag: the stored remote object's ETag (checked on every read).
        owned: True when mlflowlet wrote the stored file (``mlflowlet gc`` removes it once no
            recorded version references it); False for files recorded where they are.
        link_iteration: on a sweep's parent, the best iteration whose version this links to.
    """

    default_kind: ClassVar[str] = "artifact"
    _FIELDS: ClassVar[tuple[str, ...]] = (
        "kind", "key", "uid", "uri", "target_path", "hash", "size", "format", "viewer",
        "labels", "tag", "producer", "project", "tree", "iteration", "updated", "extra",
        "mtime_ns", "etag", "owned", "link_iteration",
    )  # fmt: skip

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind:
            cls.default_kind = kind
            _KINDS[kind] = cls

    def __init__(
        self,
        key: str,
        body: Any = None,
        local_path: str | None = None,
        target_path: str | None = None,
        viewer: str | None = None,
        format: str | None = None,
        labels: dict[str, str] | None = None,
        tag: str | None = None,
        kind: str = "artifact",
    ) -> None:
        self.key = key
        self.body = body
        self.local_path = local_path
        self.target_path = target_path
        self.viewer = viewer
        self.format = format
        self.labels: dict[str, str] = dict(labels or {})
        self.tag = tag
        self.kind = kind if type(self) is Artifact else self.default_kind
        self.uri: str | None = None
        self.hash: str | None = None
        self.size: int | None = None
        self.producer: dict[str, Any] = {}
        self.project = ""
        self.tree = ""
        self.iteration = 0
        self.updated: str | None = None
        self.uid: str | None = None
        self.extra: dict[str, Any] = {}
        self.mtime_ns: int | None = None
        self.etag: str | None = None
        self.owned = False
        self.link_iteration: int | None = None

    # content ------------------------------------------------------------------------------
    def get_body(self) -> bytes | None:
        """Return the bytes to store, or None when there is no body (``local_path`` instead).

        Raises:
            ArtifactError: the body has a type that cannot be stored.
        """
        return encode_body(self.key, self.body)

    @property
    def suffix(self) -> str:
        """The file extension used when no file name is given, e.g. ``'.csv'``, or ``''``.

        An explicit ``format`` always gives the suffix; otherwise a key that already has an
        extension (``'report.html'``) keeps it, and the body type or a ``web-app`` viewer
        picks one.
        """
        if self.format:
            return "." + self.format.lstrip(".")
        if "." in self.key.replace("\\", "/").rsplit("/", 1)[-1].lstrip("."):
            return ""  # the key names its own file type; never 'page.html.txt'
        if self.viewer == "web-app":
            return ".html"
        if isinstance(self.body, (dict, list)):
            return ".json"
        if isinstance(self.body, str):
            return ".txt"
        return ""

    # records ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe flat record (never the body; NaN/inf metrics kept as floats)."""
        return {name: json_safe(getattr(self, name), keep_nonfinite=True) for name in self._FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Artifact:
        """Rebuild an artifact from :meth:`to_dict` output, as the class its ``kind`` names.

        Unknown kinds come back as a plain :class:`Artifact` keeping their ``kind``.

        Raises:
            ArtifactError: ``data`` has no ``key``.
        """
        if not isinstance(data, dict) or not data.get("key"):
            raise ArtifactError(f"an artifact record needs a 'key', got {data!r:.200}")
        kind = data.get("kind") or "artifact"
        if kind not in _KINDS and kind in _KIND_MODULES:
            import importlib

            importlib.import_module(_KIND_MODULES[kind])
        target = _KINDS.get(kind, Artifact)
        obj = target.__new__(target)
        Artifact.__init__(obj, data["key"], kind=kind)
        for name in cls._FIELDS:
            if name in data and name not in ("kind", "key", "labels", "producer", "extra"):
                setattr(obj, name, data[name])
        obj.labels = dict(data.get("labels") or {})
        obj.producer = dict(data.get("producer") or {})
        extra = dict(data.get("extra") or {})
        obj.extra = extra
        obj._restore(extra)
        return obj

    def _restore(self, extra: dict[str, Any]) -> None:
        """Rebuild kind-specific state from ``extra`` after :meth:`from_dict`."""

    def __repr__(self) -> str:
        where = f", uri={self.uri!r}" if self.uri else ""
        return f"{type(self).__name__}(key={self.key!r}, kind={self.kind!r}{where})"


def artifact_from_dict(data: dict[str, Any]) -> Artifact:
    """Rebuild an artifact of the right class from its :meth:`Artifact.to_dict` record."""
    return Artifact.from_dict(data)


def is_dataframe(obj: Any) -> bool:
    """Return True for a pandas DataFrame, without importing pandas."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def encode_body(key: str, body: Any) -> bytes | None:
    """Turn a body into bytes: bytes as is, str as UTF-8, dict/list as JSON, DataFrame as CSV.

    Raises:
        ArtifactError: any other type, or a dict/list that is not JSON-serialisable.
    """
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (dict, list)):
        import json

        try:
            return json.dumps(body, indent=2, default=_json_default).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"artifact {key!r}: body is not JSON-serialisable: {exc}") from exc
    if is_dataframe(body):
        return str(body.to_csv(index=False)).encode("utf-8")
    raise ArtifactError(
        f"artifact {key!r}: body must be bytes, str, dict/list or a DataFrame, "
        f"got {type(body).__name__} (pass local_path= for files)"
    )


def _json_default(value: Any) -> Any:
    """Encode numpy scalars and arrays (anything with ``.tolist()``); refuse the rest."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def json_safe(value: Any, keep_nonfinite: bool = False) -> Any:
    """Return ``value`` made JSON-safe.

    Numpy scalars are unwrapped, tuples and sets become lists, keys strings, dates ISO strings,
    and anything else unknown its ``str``. NaN/inf become None (a missing value in a data
    preview), or stay floats with ``keep_nonfinite`` (a metric: the run DB keeps them exactly).
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if keep_nonfinite or math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v, keep_nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, keep_nonfinite) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return json_safe(value.item(), keep_nonfinite)
    if hasattr(value, "tolist"):
        return json_safe(value.tolist(), keep_nonfinite)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
