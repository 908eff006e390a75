"""Store artifacts under a run's artifact path: naming, atomic writes, hashing, versions."""

from __future__ import annotations

import os
import posixpath
import stat
from typing import Any

from mlflowlet.artifacts._keys import validate_key, validate_relpath, validate_tag
from mlflowlet.artifacts._write import Claims, link_existing, stamp_of, store_version
from mlflowlet.artifacts.base import Artifact, is_dataframe
from mlflowlet.datastore._dirtree import DIR_FORMAT, hash_tree, store_tree, tree_stamp
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
        self._claimed = Claims()  # locations this manager wrote: never written again

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
            local_path: a local file, or directory (stored whole, recorded with format
                ``'dir'``, see :mod:`mlflowlet.datastore._dirtree`), to store instead of a body.
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
        owned = True  # a file written here for this version (deleted with its run's files)
        digest: str | None
        size: int | None
        is_dir = src is not None and os.path.isdir(src)
        if is_dir:
            art.format = DIR_FORMAT
        if src is not None and not upload:
            from mlflowlet.datastore import _hashing
            from mlflowlet.datastore._streams import hash_file

            uri, owned, algo = src, False, _hashing.default_algo()
            if is_dir:
                digest, size = hash_tree(src, algo, f"artifact {key!r}")
            else:
                digest, size = hash_file(src, algo)
            digest = _hashing.label(algo, digest)
        elif is_dir:
            from mlflowlet.datastore import _hashing

            assert src is not None
            dest = self._destination(art, src, producer, iteration)
            algo = _hashing.default_algo()
            uri, digest, size = store_tree(key, src, dest, secrets, self._claimed, algo)
        elif data is None and src is None:  # record an existing object where it is
            uri, owned = self._existing(art), False
            digest, size = link_existing(key, uri, secrets)
        else:
            dest = self._destination(art, src, producer, iteration)
            uri, digest, size = store_version(key, dest, data, src, secrets, self._claimed)
        if not art.format:
            ext = os.path.splitext(src or uri)[1]
            art.format = ext[1:] if ext else None
        stamp = stamp_of(uri, secrets) if not is_dir else tree_stamp(uri) if is_local(uri) else {}
        _record(art, uri, digest, size, producer, project, tree, iteration)
        art.mtime_ns, art.etag, art.owned = stamp.get("mtime_ns"), stamp.get("etag"), owned
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
        if art.tag:
            validate_tag(art.tag)
        if type(art) is Artifact and is_dataframe(art.body):
            art = _as_table(art)
        return art

    def _existing(self, art: Artifact) -> str:
        """Return where an existing object named by ``target_path`` is (nothing is written)."""
        target = os.fspath(art.target_path or "")
        if url_scheme(target) not in ("", "file"):
            return target
        if url_scheme(target) == "file" or os.path.isabs(target):
            return local_path(target)
        return self._inside(art.key, validate_relpath(target) if target else art.key)

    def _destination(
        self, art: Artifact, src: str | None, producer: dict[str, Any] | None, iteration: int
    ) -> str:
        """Return the first candidate location of a new version (see :func:`store_version`).

        A relative name goes under the artifact path (the run's own directory); an absolute
        ``target_path`` or URL keeps its directory and file name with the producing run's
        ``<uid>[/<iteration>]`` between them, so runs sharing a target never share a file.
        """
        target = os.fspath(art.target_path or "")
        if target and (url_scheme(target) != "" or os.path.isabs(target)):  # file:// too
            remote = url_scheme(target) not in ("", "file")
            head, name = posixpath.split(target) if remote else os.path.split(local_path(target))
            uid = str((producer or {}).get("uid") or "")
            run_dir = "/".join([uid, str(iteration)] if iteration else [uid]) if uid else ""
            return join_url(join_url(head, run_dir) if run_dir else head, name)
        if target:
            name = validate_relpath(target)
        elif src is not None:
            name = os.path.basename(src)
        else:
            suffix = art.suffix
            name = art.key if not suffix or art.key.endswith(suffix) else art.key + suffix
        return self._inside(art.key, name)

    def _inside(self, key: str, name: str) -> str:
        dest = join_url(self.artifact_path, name)
        if not self.local or _plainly_under(self.artifact_path, name):
            return dest
        base = os.path.realpath(self.artifact_path)
        if os.path.commonpath([base, os.path.realpath(dest)]) != base:
            # resolved: a symlink under the artifact path cannot lead the write out of it
            raise ArtifactError(f"artifact {key!r}: {dest!r} is outside {self.artifact_path!r}")
        return dest


def _plainly_under(root: str, name: str) -> bool:
    """Whether ``root/name`` stays under ``root`` once resolved, told without resolving ``root``.

    True when no part of ``name`` is ``..``, ``.`` or empty and none that exists is a symbolic
    link (a part that does not exist has none below it): then the resolved path is the resolved
    root with ``name`` under it. False means "resolve both and compare" (see ``_inside``).
    """
    parts = name.replace("\\", "/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        return False
    path = local_path(root)
    for part in parts:
        path = os.path.join(path, part)
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return False
        except FileNotFoundError:
            return True
        except OSError:  # not a directory, too long...: let the full check say
            return False
    return True


def _source(key: str, path: str | None) -> str | None:
    """Return ``path`` as an absolute path, checking that the file (or directory) exists."""
    if path is None:
        return None
    src = os.path.abspath(os.fspath(path))
    if not os.path.isfile(src) and not os.path.isdir(src):
        raise DataNotFoundError(f"artifact {key!r}: no such file '{src}'")
    return src


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
    from datetime import datetime, timezone

    art.uri = art.target_path = uri
    art.hash, art.size = digest, size
    art.producer = dict(producer or {})
    art.project = project or ""
    art.tree = tree or str(art.producer.get("uid") or "")
    art.iteration = int(iteration or 0)
    art.tag = art.tag or "latest"
    art.updated = datetime.now(timezone.utc).isoformat()
    art.uid = version_uid(
        art.project, art.key, art.producer.get("uid"), art.tree, art.iteration, digest or uri
    )


def version_uid(
    project: str, key: str, producer: Any, tree: str, iteration: int, content: str
) -> str:
    """Return an artifact version's uid.

    It hashes the project, key, producer uid, tree, iteration and ``content`` (the version's
    hash, or its URI when it has none).
    """
    import hashlib
    import json

    identity = [project, key, producer, tree, iteration, content]
    return hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()[:32]
