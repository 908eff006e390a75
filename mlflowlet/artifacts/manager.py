"""Store artifacts under a run's artifact path: naming, atomic writes, hashing, versions."""

from __future__ import annotations

import os
from typing import Any

from mlflowlet.artifacts._keys import validate_key
from mlflowlet.artifacts.base import Artifact, is_dataframe
from mlflowlet.datastore._urls import is_local, join_url, local_path, url_scheme
from mlflowlet.errors import ArtifactError, DataNotFoundError

#: A ``body=`` larger than this warns: it is held in memory whole (it is still written in
#: chunks). Files of any size stream with bounded memory through ``local_path=``.
BODY_WARN_BYTES = 64 << 20


class ArtifactManager:
    """Write a run's artifacts under its artifact path and fill in their records.

    It does not touch the run DB: the caller buffers :meth:`Artifact.to_dict` records and
    stores them (``db.store_artifact``).

    Args:
        artifact_path: this run's artifact directory: a local path or a URL such as
            ``s3://bucket/prefix``.

    Raises:
        ArtifactError: ``artifact_path`` is empty.
    """

    def __init__(self, artifact_path: str) -> None:
        if not artifact_path:
            raise ArtifactError("an artifact path is required")
        artifact_path = os.fspath(artifact_path)
        self.local = is_local(artifact_path)
        self.artifact_path = local_path(artifact_path) if self.local else artifact_path.rstrip("/")

    def __repr__(self) -> str:
        return f"ArtifactManager({self.artifact_path!r})"

    def log(
        self,
        item: str | Artifact,
        body: Any = None,
        local_path: str | None = None,
        target_path: str | None = None,
        viewer: str | None = None,
        labels: dict[str, str] | None = None,
        format: str | None = None,
        tag: str | None = None,
        upload: bool = True,
        producer: dict[str, Any] | None = None,
        project: str = "",
        tree: str = "",
        iteration: int = 0,
        secrets: Any = None,
    ) -> Artifact:
        """Store an artifact and return it with its record fields filled.

        Args:
            item: an artifact key, or an :class:`Artifact` (the other arguments, when given,
                override its own).
            body: the content (bytes, str, dict/list, DataFrame, or what the kind renders).
            local_path: a local file to store instead of a body.
            target_path: the file to write: relative to the artifact path, an absolute local
                path, or a URL. Default: the basename of ``local_path``, else key + suffix.
            viewer: how a UI shows it.
            labels: labels merged into the artifact's.
            format: the file format (also the suffix).
            tag: the version tag (default ``'latest'``).
            upload: with ``local_path``, False records the file where it is (no copy).
            producer: ``{'uid', 'name', 'iteration', 'kind'}`` of the producing run.
            project: the project name.
            tree: the run or pipeline uid (default: the producer's uid).
            iteration: the hyper-parameter iteration.
            secrets: credentials for a remote destination's data store.

        Raises:
            PathTraversalError: the key or a relative target path escapes the artifact path.
            DataNotFoundError: ``local_path`` does not exist.
            ArtifactError: a body that cannot be stored, or nothing to store.
        """
        art = self._prepare(item, body, local_path, target_path, viewer, labels, format, tag)
        key = validate_key(art.key)
        data = art.get_body()
        if (
            data is not None
            and art.local_path is not None
            and not art.target_path
            and not os.path.exists(os.fspath(art.local_path))
        ):  # MLRun's log_artifact(key, body=..., local_path='model.pkl'): the body's file name
            art.target_path, art.local_path = os.fspath(art.local_path), None
        src = _source(key, art.local_path)
        if data is not None and src is not None:
            raise ArtifactError(f"artifact {key!r}: pass a body or a local_path, not both")
        if data is not None and len(data) > BODY_WARN_BYTES:
            import warnings

            warnings.warn(
                f"artifact {key!r}: a body of {len(data) >> 20} MiB is held in memory; write "
                "it to a file and pass local_path= to stream it with bounded memory",
                stacklevel=3,
            )
        digest: str | None
        size: int | None
        if src is not None and not upload:
            from mlflowlet.datastore._streams import hash_file

            uri = src
            digest, size = hash_file(src)
        else:
            uri = self._destination(art, src)
            digest, size = _store(key, uri, data, src, secrets)
        if not art.format:
            ext = os.path.splitext(src or uri)[1]
            art.format = ext[1:] if ext else None
        _record(art, uri, digest, size, producer, project, tree, iteration)
        return art

    def _prepare(
        self,
        item: str | Artifact,
        body: Any,
        local_path: str | None,
        target_path: str | None,
        viewer: str | None,
        labels: dict[str, str] | None,
        format: str | None,
        tag: str | None,
    ) -> Artifact:
        """Build the artifact from a key, or apply the given overrides to an artifact."""
        if isinstance(item, Artifact):
            art = item
        elif isinstance(item, str):
            art = Artifact(item)
        else:
            raise ArtifactError(f"log() takes a key or an Artifact, got {type(item).__name__}")
        for name, value in (
            ("body", body), ("local_path", local_path), ("target_path", target_path),
            ("viewer", viewer), ("format", format), ("tag", tag),
        ):  # fmt: skip
            if value is not None:
                setattr(art, name, value)
        if labels:
            art.labels.update({str(k): str(v) for k, v in labels.items()})
        if type(art) is Artifact and is_dataframe(art.body):
            art = _as_table(art)
        return art

    def _destination(self, art: Artifact, src: str | None) -> str:
        """Return the URL or absolute local path the artifact is written to."""
        target = art.target_path
        if target:
            target = os.fspath(target)
            if url_scheme(target) not in ("", "file"):
                return target
            if url_scheme(target) == "file" or os.path.isabs(target):
                return local_path(target)
            validate_key(target)
            name = target
        elif src is not None:
            name = os.path.basename(src)
        else:
            suffix = art.suffix
            name = art.key if not suffix or art.key.endswith(suffix) else art.key + suffix
        dest = join_url(self.artifact_path, name)
        base = os.path.realpath(self.artifact_path) if self.local else ""
        if self.local and os.path.commonpath([base, os.path.realpath(dest)]) != base:
            # resolved: a symlink under the artifact path cannot lead the write out of it
            raise ArtifactError(f"artifact {art.key!r}: {dest!r} is outside {self.artifact_path!r}")
        return dest


def _source(key: str, path: str | None) -> str | None:
    """Return ``path`` as an absolute path, checking that the file exists."""
    if path is None:
        return None
    src = os.path.abspath(os.fspath(path))
    if not os.path.isfile(src):
        raise DataNotFoundError(f"artifact {key!r}: no such file '{src}'")
    return src


def _store(
    key: str, uri: str, data: bytes | None, src: str | None, secrets: Any
) -> tuple[str | None, int | None]:
    """Write ``data`` or copy ``src`` to ``uri``; return ``(sha256, size)``."""
    from mlflowlet.datastore._streams import CHUNK_SIZE, copy_hashed, hash_file, write_atomic

    if is_local(uri):
        if data is not None:
            view = memoryview(data)
            chunks = (view[i : i + CHUNK_SIZE] for i in range(0, len(view), CHUNK_SIZE))
            return write_atomic(uri, chunks)  # type: ignore[arg-type] # bytes-like chunks
        if src is not None:
            if os.path.exists(uri) and os.path.samefile(src, uri):
                return hash_file(src)  # already in place
            return copy_hashed(src, uri)  # kernel copy, hashed alongside
        return _link(key, uri, secrets)
    from mlflowlet.datastore.registry import get_store

    store = get_store(uri, secrets)
    if data is not None:
        import hashlib

        store.put(uri, data)
        return hashlib.sha256(data).hexdigest(), len(data)
    if src is not None:
        return store.upload_hashed(uri, src)  # hashed while it is read for the upload
    return _link(key, uri, secrets)


def _link(key: str, uri: str, secrets: Any) -> tuple[None, int | None]:
    """Record an existing object at ``uri`` without writing; it must exist."""
    from mlflowlet.datastore.registry import get_store

    try:
        info = get_store(uri, secrets).stat(uri)
    except DataNotFoundError:
        raise ArtifactError(
            f"artifact {key!r}: nothing to store: pass a body or a local_path, or a "
            f"target_path that exists ({uri!r} does not)"
        ) from None
    return None, info.get("size")


def _as_table(art: Artifact) -> Artifact:
    """Turn a plain artifact whose body is a DataFrame into a CSV :class:`TableArtifact`."""
    from mlflowlet.artifacts.table import TableArtifact

    table = TableArtifact(
        art.key, df=art.body, viewer=art.viewer or "table", format=art.format or "csv",
        target_path=art.target_path, labels=art.labels, tag=art.tag,
    )  # fmt: skip
    return table


def _record(
    art: Artifact,
    uri: str,
    digest: str | None,
    size: int | None,
    producer: dict[str, Any] | None,
    project: str,
    tree: str,
    iteration: int,
) -> None:
    """Fill the artifact's record fields after it was stored."""
    import hashlib
    import json
    from datetime import datetime, timezone

    art.uri = art.target_path = uri
    art.hash, art.size = digest, size
    art.producer = dict(producer or {})
    art.project = project or ""
    art.tree = tree or str(art.producer.get("uid") or "")
    art.iteration = int(iteration or 0)
    art.tag = art.tag or "latest"
    art.updated = datetime.now(timezone.utc).isoformat()
    identity = [
        art.project,
        art.key,
        art.producer.get("uid"),
        art.tree,
        art.iteration,
        digest or uri,
    ]
    art.uid = hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()[:32]
