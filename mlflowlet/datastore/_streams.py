"""Streaming, hashing and atomic file writes shared by the stores and the artifact manager.

A write goes to a hidden temporary file in the destination directory, then ``os.replace``
moves it into place, so readers see either the old file or the whole new one, never a
partial one. (No ``fsync``: this protects readers, not against power loss.)
"""

from __future__ import annotations

import errno
import io
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

CHUNK_SIZE = 1 << 20  # 1 MiB


def iter_stream(fileobj: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield ``fileobj``'s bytes in chunks of at most ``chunk_size``."""
    while True:
        chunk = fileobj.read(chunk_size)
        if not chunk:
            return
        yield chunk


def iter_file(path: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield the bytes of the file at ``path`` in chunks, never holding it whole."""
    with open(path, "rb") as f:
        yield from iter_stream(f, chunk_size)


def hash_file(path: str, algo: str = "sha256") -> tuple[str, int]:
    """Return ``(hex digest, size in bytes)`` of a file (``algo``: sha256 or blake3)."""
    from mlflowlet.datastore._hashing import new_hasher

    with open(path, "rb", buffering=0) as f:
        hasher, size = new_hasher(algo, os.fstat(f.fileno()).st_size), 0
        buf = bytearray(HASH_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            hasher.update(view[:n])
            size += n
    return hasher.hexdigest(), size


class HashingReader(io.RawIOBase):
    """A read-only, forward-only view of ``fileobj`` that hashes what is read.

    It says it cannot seek, so a consumer (boto3's managed upload) reads every byte exactly
    once, in order: the digest is then the digest of the whole stream, computed while
    copying instead of in a second pass.

    Args:
        fileobj: a binary file object to read.
        algo: the hash algorithm (sha256 or blake3).
        size: the stream's size when known (a large one is hashed with several threads).
    """

    def __init__(self, fileobj: BinaryIO, algo: str = "sha256", size: int | None = None) -> None:
        from mlflowlet.datastore._hashing import new_hasher

        super().__init__()
        self._f = fileobj
        self._sha = new_hasher(algo, size)
        self.algo = algo
        self.size = 0

    def readable(self) -> bool:
        """Return True: this is a reader."""
        return True

    def seekable(self) -> bool:
        """Return False: bytes are hashed in order, so there is no going back."""
        return False

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer``, hashing the bytes read."""
        view = memoryview(buffer).cast("B")
        data = self._f.read(len(view))
        n = len(data)
        view[:n] = data
        self._sha.update(data)
        self.size += n
        return n

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all when negative), hashing them."""
        data = self._f.read() if size is None or size < 0 else self._f.read(size)
        self._sha.update(data)
        self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        """The sha256 hex digest of everything read so far (a sha256 reader only)."""
        assert self.algo == "sha256", self.algo
        return self.hexdigest()

    def hexdigest(self) -> str:
        """Return the hex digest (of :attr:`algo`) of everything read so far."""
        return str(self._sha.hexdigest())


class PublishingWriter(io.RawIOBase):
    """A hashing, counting binary writer whose output is published by ``close()`` only.

    Leaving a ``with`` block on an exception, or garbage collection before ``close()``, calls
    :meth:`abort` instead, so a half-written target is never published. Subclasses implement
    ``_put(view)`` (store the bytes), ``close()`` and ``abort()``, and set ``_done``.
    """

    def __init__(self, algo: str = "sha256") -> None:
        from mlflowlet.datastore._hashing import new_hasher

        super().__init__()
        self._sha = new_hasher(algo)
        self.algo = algo
        self.size = 0
        self._done = False

    def writable(self) -> bool:
        """Return True: this is a writer."""
        return True

    def write(self, data: Any) -> int:
        """Write ``data`` (bytes-like), hashing and counting it."""
        view = memoryview(data).cast("B")
        self._put(view)
        self._sha.update(view)
        self.size += len(view)
        return len(view)

    def _put(self, view: memoryview) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what was written; the target is left as it was."""
        raise NotImplementedError

    @property
    def sha256(self) -> str:
        """The sha256 hex digest of everything written so far (a sha256 writer only)."""
        assert self.algo == "sha256", self.algo
        return self.hexdigest()

    def hexdigest(self) -> str:
        """Return the hex digest (of :attr:`algo`) of everything written so far."""
        return str(self._sha.hexdigest())

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # IOBase.__del__ would close(), i.e. publish a partial target: abort instead.
        if not getattr(self, "_done", True):
            self.abort()


def _make_dir(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, one system call fewer for a new leaf directory.

    ``makedirs`` looks at the parent before every ``mkdir``; a run's artifact directory is new
    and its parent exists, so ``mkdir`` alone usually does it.
    """
    try:
        os.mkdir(path)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    except FileNotFoundError:  # a parent is missing too
        os.makedirs(path, exist_ok=True)


class AtomicFile(PublishingWriter):
    """A binary writer that lands at ``path`` only when closed without error.

    It hashes (sha256) and counts what goes through it. Leaving a ``with`` block on an
    exception, or calling :meth:`abort`, removes the temporary file and leaves ``path``
    as it was.

    Args:
        path: the final file path; missing parent directories are created.
        exclusive: never replace an existing file: publish to ``path``, else to the first free
            :func:`versioned_name` of it (:attr:`path` is then where it landed).
        algo: the hash algorithm (sha256 or blake3).
    """

    def __init__(self, path: str, exclusive: bool = False, algo: str = "sha256") -> None:
        super().__init__(algo)
        self._done = True  # nothing to abort until the temporary file exists
        self.path = path
        self.exclusive = exclusive
        parent = os.path.dirname(path) or "."
        _make_dir(parent)
        # os.open with 0o666 honours the umask, unlike mkstemp's 0o600.
        self._tmp = os.path.join(parent, f".{os.path.basename(path)}.{os.urandom(6).hex()}.tmp")
        self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self._done = False

    def _put(self, view: memoryview) -> None:
        written = 0
        while written < len(view):
            written += os.write(self._fd, view[written:])

    def abort(self) -> None:
        """Drop the temporary file; ``path`` is left untouched."""
        if not self._done:
            self._done = True
            os.close(self._fd)
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
        super().close()

    def close(self) -> None:
        """Move the temporary file into place (once)."""
        if not self._done:
            self._done = True
            try:
                os.close(self._fd)
                self.path = publish(self._tmp, self.path, self.exclusive)
            except BaseException:
                try:
                    os.unlink(self._tmp)
                except FileNotFoundError:
                    pass
                raise
        super().close()


#: How many names :func:`publish` tries before giving up (``name``, ``name.v2`` ...).
MAX_VERSIONS = 10_000


def versioned_name(path: str, n: int) -> str:
    """Return the ``n``-th candidate name of ``path``: itself for 1, else ``stem.v<n>.ext``.

    The extension stays last, so the format is still told from the name
    (``model.pkl`` -> ``model.v2.pkl``, ``data`` -> ``data.v2``).
    """
    if n <= 1:
        return path
    head, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    if not stem:  # a dot file such as '.env'
        stem, ext = name, ""
    return os.path.join(head, f"{stem}.v{n}{ext}")


def free_remote_name(dest: str, claims: Any, exists: Any) -> str:
    """Return the first candidate name of ``dest`` in a store with nothing there and no claim.

    ``exists(uri)`` raises ``DataNotFoundError`` where nothing is (a file's ``stat``, a
    folder's ``listdir``); ``claims`` (``in``, ``take``) keeps two writers of this process off
    one name. Raises ``ArtifactError`` after ``MAX_VERSIONS`` candidates.
    """
    import posixpath

    from mlflowlet.errors import ArtifactError, DataNotFoundError

    head, name = posixpath.split(dest.rstrip("/"))
    for n in range(1, MAX_VERSIONS + 1):
        uri = posixpath.join(head, posixpath.basename(versioned_name(name, n)))
        if uri in claims:
            continue
        try:
            exists(uri)
        except DataNotFoundError:
            if claims.take(uri):
                return uri
    raise ArtifactError(f"no free name for {dest!r} after {MAX_VERSIONS} versions")


def publish(tmp: str, path: str, exclusive: bool = False) -> str:
    """Move the finished temporary file ``tmp`` to ``path``; return where it landed.

    Without ``exclusive`` an existing ``path`` is replaced (``os.replace``). With it, nothing is
    ever replaced: the file lands at ``path`` or the first free :func:`versioned_name`, and the
    claim is atomic (a hard link, or an ``O_EXCL`` placeholder where links are not supported),
    so concurrent writers, in threads or processes, each get a name of their own.
    """
    if not exclusive:
        os.replace(tmp, path)
        return path
    for n in range(1, MAX_VERSIONS + 1):
        candidate = versioned_name(path, n)
        try:
            _claim(tmp, candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, f"no free name for {path!r} after {MAX_VERSIONS}")


def _claim(tmp: str, path: str) -> None:
    """Give ``tmp`` the name ``path`` unless it exists (``FileExistsError``); ``tmp`` is gone."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here: reserve the name, then move the file onto it
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def copy_atomic(src: str, path: str) -> None:
    """Copy the file ``src`` to ``path`` atomically, in the kernel where it can (no hashing).

    ``shutil.copyfile`` uses ``copy_file_range``/``sendfile``: no bytes pass through Python,
    as fast as ``cp``. For copies whose digest is needed, use :func:`write_atomic`.
    """
    import shutil

    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{os.urandom(6).hex()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


#: Read size when hashing beside a kernel copy: hashlib releases the GIL on buffers this big.
HASH_CHUNK = 4 << 20  # 4 MiB
#: Bytes per copy_file_range/sendfile call; the copy thread checks for cancellation between.
COPY_SLICE = 64 << 20  # 64 MiB, in the kernel: no user memory
# A kernel copy call failing with one of these before any byte moved means "not here".
_NO_FAST_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSOCK,
                 errno.EBADF, errno.EPERM, errno.ENOTSUP}  # fmt: skip


def _kernel_copy(src_fd: int, dst_fd: int, cancel: threading.Event) -> int:
    """Copy ``src_fd`` (from offset 0, its own offset untouched) to ``dst_fd``; return bytes.

    ``copy_file_range``, else ``sendfile``, else ``pread``/``write`` in 1 MiB chunks.
    """
    copied = 0
    calls: list[Any] = []
    if hasattr(os, "copy_file_range"):
        calls.append(lambda n: os.copy_file_range(src_fd, dst_fd, n, copied))
    if sys.platform.startswith("linux"):  # sendfile to a regular file: Linux only
        calls.append(lambda n: os.sendfile(dst_fd, src_fd, copied, n))
    for call in calls:
        try:
            while not cancel.is_set():
                n = call(COPY_SLICE)
                if not n:
                    return copied
                copied += n
            return copied
        except OSError as exc:
            if copied or exc.errno not in _NO_FAST_COPY:
                raise
    while not cancel.is_set():
        chunk = os.pread(src_fd, CHUNK_SIZE, copied)
        if not chunk:
            break
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view) :]
        copied += len(chunk)
    return copied


def _unchanged(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)


def copy_hashed(src: str, path: str) -> tuple[str, int]:
    """Copy the file ``src`` to ``path`` atomically; return its ``(sha256, size)``.

    See :func:`copy_hashed_to`, which this calls with ``exclusive=False``.
    """
    _, digest, size = copy_hashed_to(src, path)
    return digest, size


def copy_hashed_to(
    src: str, path: str, exclusive: bool = False, algo: str = "sha256"
) -> tuple[str, str, int]:
    """Copy the file ``src`` to ``path`` atomically; return ``(final path, hex digest, size)``.

    With ``exclusive`` nothing is replaced: see :func:`publish`. ``algo`` is the hash
    algorithm (sha256 or blake3).

    The kernel copies (``copy_file_range``, else ``sendfile``) in a worker thread while this
    thread hashes the source through the page cache (hashlib and blake3 release the GIL; blake3
    hashes a large file with a thread pool): a hashed copy then takes as long as the slower of
    the two, not read + hash + write in series. Memory
    is one :data:`HASH_CHUNK` buffer. The bytes are read twice, so the source's size and
    mtime are checked after both passes; when it changed meanwhile (or the copied size differs
    from the hashed one), the copy is redone in one pass with :func:`write_atomic`, so the
    digest is always the digest of the published bytes. On any error ``path`` is left as it
    was and the temporary file is removed.
    """
    from mlflowlet.datastore._hashing import new_hasher

    if not hasattr(os, "pread"):  # no positional reads (Windows): hash while copying, serially
        return write_new(path, iter_file(src), exclusive, algo)
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    with open(src, "rb", buffering=0) as fin:
        before = os.fstat(fin.fileno())
        tmp = os.path.join(parent, f".{os.path.basename(path)}.{os.urandom(6).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        cancel = threading.Event()
        outcome: list[int | BaseException] = []  # the copy's byte count or its error

        def copy() -> None:
            try:
                outcome.append(_kernel_copy(fin.fileno(), fd, cancel))
            except BaseException as exc:  # re-raised in the caller's thread
                outcome.append(exc)

        worker = threading.Thread(target=copy, name="mlflowlet-copy", daemon=True)
        try:
            worker.start()
            sha, size, buf = new_hasher(algo, before.st_size), 0, bytearray(HASH_CHUNK)
            view = memoryview(buf)
            while n := fin.readinto(buf):
                sha.update(view[:n])
                size += n
            worker.join()
            if isinstance(outcome[0], BaseException):
                raise outcome[0]
            same = outcome[0] == size and _unchanged(before, os.fstat(fin.fileno()))
            os.close(fd)
            fd = -1
            if same:
                return publish(tmp, path, exclusive), sha.hexdigest(), size
        finally:
            cancel.set()
            if worker.ident is not None:
                worker.join()
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    return write_new(path, iter_file(src), exclusive, algo)  # the source changed meanwhile


def write_atomic(path: str, chunks: Iterable[bytes]) -> tuple[str, int]:
    """Write ``chunks`` to ``path`` atomically.

    Returns:
        ``(sha256 hex digest, size in bytes)`` of what was written.
    """
    _, digest, size = write_new(path, chunks)
    return digest, size


def write_new(
    path: str, chunks: Iterable[bytes], exclusive: bool = False, algo: str = "sha256"
) -> tuple[str, str, int]:
    """Write ``chunks`` to ``path`` atomically; return ``(final path, hex digest, size)``.

    With ``exclusive`` nothing is replaced: see :func:`publish`. ``algo`` is the hash
    algorithm (sha256 or blake3).
    """
    with AtomicFile(path, exclusive, algo) as out:
        for chunk in chunks:
            out.write(chunk)
    return out.path, out.hexdigest(), out.size
