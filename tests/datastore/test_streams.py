"""_streams.copy_hashed: a kernel copy hashed alongside, atomic, bounded, never half-published."""

from __future__ import annotations

import errno
import hashlib
import os
import threading

import pytest

from mlflowlet.datastore import _streams, get_store

needs_copy_file_range = pytest.mark.skipif(
    not hasattr(os, "copy_file_range"), reason="needs os.copy_file_range (Linux)"
)


@pytest.fixture
def small_chunks(monkeypatch):
    """Make a 1 MiB file span many hash chunks and copy slices."""
    monkeypatch.setattr(_streams, "HASH_CHUNK", 64 << 10)
    monkeypatch.setattr(_streams, "COPY_SLICE", 128 << 10)


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "src.bin"
    path.write_bytes(os.urandom((1 << 20) + 4321))
    return path


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "out" / "f.bin"
    path.parent.mkdir()
    path.write_bytes(b"old")
    return path


def _refuse(name):
    def call(*args):
        raise OSError(errno.EXDEV if name == "copy_file_range" else errno.EINVAL, name)

    return call


def _copy_threads():
    return [t for t in threading.enumerate() if t.name == "mlflowlet-copy"]


@pytest.mark.parametrize(
    "refused",
    [(), ("copy_file_range",), ("copy_file_range", "sendfile")],
    ids=["copy_file_range", "sendfile", "pread-write"],
)
def test_copy_hashed_of_a_multi_chunk_file_equals_hashlib(
    small_chunks, src, target, monkeypatch, refused
):
    for name in refused:
        monkeypatch.setattr(_streams.os, name, _refuse(name), raising=False)
    data = src.read_bytes()
    digest, size = _streams.copy_hashed(str(src), str(target))
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert target.read_bytes() == data
    assert os.listdir(target.parent) == ["f.bin"]


def test_file_store_upload_hashed_equals_hashlib(small_chunks, src, tmp_path):
    dest = tmp_path / "store" / "a" / "b.bin"
    digest, size = get_store(str(dest)).upload_hashed(str(dest), str(src))
    data = src.read_bytes()
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert dest.read_bytes() == data


@needs_copy_file_range
def test_copy_failing_midway_keeps_old_file_and_leaves_no_temp(
    small_chunks, src, target, monkeypatch
):
    real = os.copy_file_range
    calls = []

    def full_disk_on_second_call(*args):
        calls.append(args)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    monkeypatch.setattr(_streams.os, "copy_file_range", full_disk_on_second_call)
    with pytest.raises(OSError, match="No space left"):
        _streams.copy_hashed(str(src), str(target))
    assert target.read_bytes() == b"old"
    assert os.listdir(target.parent) == ["f.bin"]
    assert not _copy_threads()


def test_hashing_failing_midway_stops_the_copy_and_leaves_no_temp(
    small_chunks, src, target, monkeypatch
):
    real_sha256 = hashlib.sha256

    class Failing:
        def __init__(self):
            self._sha, self._updates = real_sha256(), 0

        def update(self, data):
            self._updates += 1
            if self._updates == 3:
                raise MemoryError("hash failed")
            self._sha.update(data)

    monkeypatch.setattr(hashlib, "sha256", Failing)
    with pytest.raises(MemoryError, match="hash failed"):
        _streams.copy_hashed(str(src), str(target))
    assert target.read_bytes() == b"old"
    assert os.listdir(target.parent) == ["f.bin"]
    assert not _copy_threads()


@needs_copy_file_range
def test_source_changed_during_copy_gets_the_digest_of_the_published_bytes(
    small_chunks, src, target, monkeypatch
):
    # The hash reads the first chunk, then the source is rewritten and grows, then the copy
    # starts: the two passes saw different bytes, and the result must still be consistent.
    real_sha256, real_copy = hashlib.sha256, os.copy_file_range
    rewritten = threading.Event()

    class RewriteAfterFirstChunk:
        def __init__(self):
            self._sha = real_sha256()

        def update(self, data):
            self._sha.update(data)
            if not rewritten.is_set():
                with open(src, "r+b") as f:
                    f.write(b"NEW HEAD")
                    f.seek(0, os.SEEK_END)
                    f.write(b"late bytes")
                rewritten.set()

        def hexdigest(self):
            return self._sha.hexdigest()

    def copy_after_rewrite(*args):
        assert rewritten.wait(timeout=30)
        return real_copy(*args)

    monkeypatch.setattr(hashlib, "sha256", RewriteAfterFirstChunk)
    monkeypatch.setattr(_streams.os, "copy_file_range", copy_after_rewrite)
    digest, size = _streams.copy_hashed(str(src), str(target))
    monkeypatch.undo()
    published = target.read_bytes()
    assert published.startswith(b"NEW HEAD") and published.endswith(b"late bytes")
    assert published == src.read_bytes()
    assert (digest, size) == (hashlib.sha256(published).hexdigest(), len(published))
    assert os.listdir(target.parent) == ["f.bin"]


def test_missing_source_leaves_no_temp(tmp_path, target):
    with pytest.raises(FileNotFoundError):
        _streams.copy_hashed(str(tmp_path / "nope.bin"), str(target))
    assert os.listdir(target.parent) == ["f.bin"]


def test_an_atomic_file_makes_its_missing_directories_or_refuses_a_file_in_their_place(tmp_path):
    deep = tmp_path / "a" / "b" / "f.bin"
    with _streams.AtomicFile(str(deep)) as out:  # two levels missing
        out.write(b"1")
    with _streams.AtomicFile(str(tmp_path / "a" / "c" / "f.bin")) as out:  # the leaf only
        out.write(b"2")
    with _streams.AtomicFile(str(deep), exclusive=True) as out:  # the directory exists
        out.write(b"3")
    assert deep.read_bytes() == b"1" and (tmp_path / "a" / "c" / "f.bin").read_bytes() == b"2"
    assert out.path == str(tmp_path / "a" / "b" / "f.v2.bin")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        _streams.AtomicFile(str(tmp_path / "file" / "f.bin"))
