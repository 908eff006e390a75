"""Reads of a recorded artifact version check it: size and mtime always, sha256 with verify=True."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlflowlet import get_run_db, new_runner, new_task
from mlflowlet.artifacts import verify_artifacts
from mlflowlet.datastore import _hashing, _integrity, get_dataitem
from mlflowlet.errors import ArtifactIntegrityError, DataNotFoundError, DataStoreError

BODY = b"a,b\n1,2\n3,4\n"


def _logged(tmp_path):
    def handler(context):
        context.log_artifact("table", body=BODY, format="csv")

    run = new_runner().run(new_task(artifact_path=str(tmp_path / "out")), handler=handler)
    (art,) = run.status.artifacts
    return run, art


def _same_size_other_bytes(path: str) -> None:
    with open(path, "r+b") as f:
        f.write(b"x,y")  # same size; the write moves the mtime


def _readers(run):
    yield "run.artifact().get", lambda: run.artifact("table").get()
    yield "store:// get", lambda: get_dataitem("store://artifacts/default/table").get()
    yield "local", lambda: open(run.artifact("table").local(), "rb").read()
    yield "open", lambda: run.artifact("table").open().read()
    yield "ranged get", lambda: run.artifact("table").get(size=3, offset=1)
    yield "download", lambda: run.artifact("table").download("copy.csv")


def test_same_size_other_bytes_raises_on_every_read(tmp_path):
    run, art = _logged(tmp_path)
    _same_size_other_bytes(art["uri"])
    for name, read in _readers(run):
        with pytest.raises(ArtifactIntegrityError) as err:
            read()
        assert err.value.key == "table", name
        assert err.value.location == art["uri"], name
        assert err.value.version == art["uid"], name
        assert "blake3" in err.value.reason, name
    assert not os.path.exists("copy.csv")


def test_truncated_file_raises_naming_key_version_and_location(tmp_path):
    run, art = _logged(tmp_path)
    with open(art["uri"], "r+b") as f:
        f.truncate(4)
    with pytest.raises(ArtifactIntegrityError) as err:
        run.artifact("table").get()
    assert str(err.value).startswith(
        f"artifact 'table' version {art['uid']} at '{art['uri']}' is not the recorded version: "
        f"size 4 bytes, recorded {len(BODY)}"
    )
    assert isinstance(err.value, DataStoreError) and isinstance(err.value, OSError)


def test_a_touched_file_with_intact_bytes_reads(tmp_path):
    run, art = _logged(tmp_path)
    os.utime(art["uri"], ns=(1, 1))  # e.g. a copy that did not keep times
    assert run.artifact("table").get() == BODY


def test_tampering_that_keeps_size_and_mtime_needs_verify(tmp_path):
    run, art = _logged(tmp_path)
    st = os.stat(art["uri"])
    _same_size_other_bytes(art["uri"])
    os.utime(art["uri"], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert run.artifact("table").get() != BODY  # what the cheap check cannot see...
    for read in (
        lambda: run.artifact("table", verify=True).get(),
        lambda: run.artifact("table").get(verify=True),
        lambda: run.artifact("table").local(verify=True),
        lambda: get_dataitem("store://artifacts/default/table", verify=True).open(),
    ):
        with pytest.raises(ArtifactIntegrityError, match="blake3") as err:  # ...the full hash sees
            read()
        assert (err.value.key, err.value.location) == ("table", art["uri"])


def test_verify_passes_on_intact_bytes(tmp_path):
    pytest.importorskip("pandas")
    run, _ = _logged(tmp_path)
    item = run.artifact("table", verify=True)
    assert item.get() == BODY and item.get(size=3, offset=2) == BODY[2:5]
    assert item.as_df().shape == (2, 2)
    assert open(item.local(), "rb").read() == BODY


def test_a_deleted_file_is_not_found(tmp_path):
    run, art = _logged(tmp_path)
    os.unlink(art["uri"])
    with pytest.raises(DataNotFoundError, match=art["uid"]):
        run.artifact("table").get()


def test_a_replaced_file_of_another_size_is_refused_through_as_df(tmp_path):
    pytest.importorskip("pandas")
    run, art = _logged(tmp_path)
    with open(art["uri"], "ab") as f:
        f.write(b"5,6\n")
    with pytest.raises(ArtifactIntegrityError, match="size"):
        get_dataitem("store://artifacts/default/table").as_df()


def test_plain_urls_are_not_checked(tmp_path):
    run, art = _logged(tmp_path)
    _same_size_other_bytes(art["uri"])
    assert get_dataitem(art["uri"]).get().startswith(b"x,y")  # no record: the file as it is


def test_verify_of_a_version_without_a_hash_refuses(tmp_path):
    target = tmp_path / "existing.bin"
    target.write_bytes(b"data")

    def handler(context):
        context.log_artifact("linked", target_path=str(target))  # recorded where it is

    run = new_runner().run(new_task(), handler=handler)
    assert run.artifact("linked").get() == b"data"
    with pytest.raises(ArtifactIntegrityError) as err:
        run.artifact("linked").get(verify=True)
    assert (err.value.location, err.value.reason) == (
        str(target), "no hash was recorded for this version, so it cannot be verified")
    assert get_run_db().read_artifact("linked")["owned"] is False


def test_a_recorded_version_cannot_be_written_through_its_data_item(tmp_path):
    run, art = _logged(tmp_path)
    for write in (
        lambda: run.artifact("table").put(b"other"),
        lambda: run.artifact("table").open("wb"),
        lambda: run.artifact("table").upload(art["uri"]),
    ):
        with pytest.raises(DataStoreError, match="immutable; log a new version"):
            write()
    assert open(art["uri"], "rb").read() == BODY


def test_a_verified_download_hashes_beside_the_copy_and_removes_a_bad_copy(tmp_path, monkeypatch):
    from mlflowlet.datastore import _streams

    run, art = _logged(tmp_path)
    dst = tmp_path / "copy.csv"

    def second_read(*args, **kwargs):
        raise AssertionError("the copy was read again to hash it")

    monkeypatch.setattr(_streams, "hash_file", second_read)
    run.artifact("table").download(str(dst), verify=True)
    assert dst.read_bytes() == BODY
    st = os.stat(art["uri"])
    _same_size_other_bytes(art["uri"])
    os.utime(art["uri"], ns=(st.st_atime_ns, st.st_mtime_ns))  # only the hash can tell
    with pytest.raises(ArtifactIntegrityError, match="blake3") as err:
        run.artifact("table").download(str(dst), verify=True)
    assert err.value.key == "table" and not dst.exists()  # the old copy is replaced, then removed
    run.artifact("table").download(str(dst))  # without verify: the bytes as they are
    assert dst.read_bytes() == b"x,y" + BODY[3:]


def test_a_verified_copy_of_another_size_than_recorded_is_removed(tmp_path):
    from mlflowlet.datastore import _hashing, _integrity

    src, dst = tmp_path / "v.bin", tmp_path / "out" / "copy.bin"
    src.write_bytes(BODY)
    meta = {"key": "table", "hash": _hashing.label("sha256", _hashing.digest_bytes("sha256", BODY))}
    _integrity.copy_verified({**meta, "size": len(BODY)}, str(src), str(dst))
    assert dst.read_bytes() == BODY
    with pytest.raises(ArtifactIntegrityError) as err:
        _integrity.copy_verified({**meta, "size": 3}, str(src), str(dst))
    assert (err.value.location, err.value.reason) == (
        str(dst), f"size {len(BODY)} bytes, recorded 3")
    assert not dst.exists()


def _remote(tmp_path, body=BODY):
    """A version logged to an object store (fsspec's in-memory one: sizes, no ETags)."""
    fs = pytest.importorskip("fsspec").filesystem("memory")
    where = f"memory://integrity-{tmp_path.name}/out"

    def handler(context):
        context.log_artifact("table", body=body, format="csv")

    run = new_runner().run(new_task(artifact_path=where), handler=handler)
    (art,) = run.status.artifacts
    return run, art, fs


def test_a_remote_version_of_another_size_is_refused_and_verify_sees_same_size_tampering(
    tmp_path,
):
    run, art, fs = _remote(tmp_path)
    assert art["uri"].startswith("memory://") and art["size"] == len(BODY)
    assert run.artifact("table").get(verify=True) == BODY
    assert run.artifact("table").get(size=3, offset=1, verify=True) == BODY[1:4]
    assert verify_artifacts().problems == []
    fs.pipe(art["uri"], b"x,y" + BODY[3:])  # same size: only the hash tells
    assert run.artifact("table").get() == b"x,y" + BODY[3:]
    got = _hashing.digest_bytes("blake3", b"x,y" + BODY[3:])
    recorded = art["hash"].split(":", 1)[1]
    for read in (  # the whole object read, or a range (the object hashed as it streams)
        lambda: run.artifact("table").get(verify=True),
        lambda: run.artifact("table").get(size=3, offset=1, verify=True),
    ):
        with pytest.raises(ArtifactIntegrityError) as err:
            read()
        assert (err.value.key, err.value.version, err.value.location) == (
            "table", art["uid"], art["uri"])
        assert err.value.reason == f"blake3 {got[:16]}..., recorded {recorded[:16]}..."
    (problem,) = verify_artifacts().problems
    assert problem == f"project 'default': {err.value}"
    fs.pipe(art["uri"], b"x,y\n")
    with pytest.raises(ArtifactIntegrityError) as err:
        run.artifact("table").get()
    assert (err.value.location, err.value.reason) == (
        art["uri"], f"size 4 bytes, recorded {len(BODY)}")


def test_a_touched_file_with_other_bytes_says_it_was_modified_and_how_it_differs(tmp_path):
    run, art = _logged(tmp_path)
    _same_size_other_bytes(art["uri"])
    with pytest.raises(ArtifactIntegrityError) as err:
        run.artifact("table").get()
    got = _hashing.digest_bytes("blake3", b"x,y" + BODY[3:])
    recorded = art["hash"].split(":", 1)[1]
    assert err.value.reason == (
        f"modified after it was recorded and blake3 {got[:16]}..., recorded {recorded[:16]}...")


def test_a_modified_version_without_a_hash_is_refused_on_read(tmp_path):
    target = tmp_path / "existing.bin"
    target.write_bytes(b"data")

    def handler(context):
        context.log_artifact("linked", target_path=str(target))  # no hash recorded

    run = new_runner().run(new_task(), handler=handler)
    (art,) = run.status.artifacts
    target.write_bytes(b"DATA")  # same size, a later mtime: nothing to tell intact bytes by
    os.utime(target, ns=(art["mtime_ns"] + 10**9, art["mtime_ns"] + 10**9))
    with pytest.raises(ArtifactIntegrityError) as err:
        run.artifact("linked").get()
    assert (err.value.key, err.value.location, err.value.reason) == (
        "linked", str(target), "modified after it was recorded (no hash to compare)")


def test_a_deleted_file_or_directory_is_not_found_naming_key_and_version(tmp_path):
    run, art = _logged(tmp_path)
    os.unlink(art["uri"])
    with pytest.raises(DataNotFoundError) as err:
        run.artifact("table").get()
    assert str(err.value).endswith(
        f"artifact 'table' version {art['uid']}: no such file '{art['uri']}'")
    src = tmp_path / "model"
    src.mkdir()
    (src / "w.bin").write_bytes(b"w")

    def handler(context):
        context.log_artifact("model", local_path=str(src))

    run = new_runner().run(new_task(artifact_path=str(tmp_path / "out")), handler=handler)
    (art,) = run.status.artifacts
    shutil.rmtree(art["uri"])
    with pytest.raises(DataNotFoundError) as err:
        run.artifact("model").local()
    assert str(err.value).endswith(
        f"artifact 'model' version {art['uid']}: no such directory '{art['uri']}'")


def test_a_hash_of_an_algorithm_this_mlflowlet_lacks_is_refused_naming_those_it_has(tmp_path):
    path = tmp_path / "v.bin"
    path.write_bytes(BODY)
    meta = {"key": "table", "uid": "u1", "hash": "md5:" + "0" * 32, "size": len(BODY)}
    with pytest.raises(ArtifactIntegrityError) as err:
        _integrity.verify_file(meta, str(path))
    assert (err.value.location, err.value.reason) == (
        str(path),
        "recorded with hash algorithm 'md5', which this mlflowlet cannot compute (blake3, sha256)",
    )




def test_a_changed_version_of_a_sweeps_iteration_is_named_with_its_iteration(tmp_path):
    from mlflowlet.model import RunObject

    def handler(context, i: int = 0):
        context.log_artifact("table", body=BODY, format="csv")

    task = new_task(artifact_path=str(tmp_path / "out"), hyper_params={"i": [1, 2]})
    run = new_runner().run(task, handler=handler)
    second = RunObject.model_validate(get_run_db().read_run(run.uid, iter=2))
    (art,) = second.status.artifacts
    _same_size_other_bytes(art["uri"])
    with pytest.raises(ArtifactIntegrityError) as err:
        second.artifact("table").get()
    assert (err.value.version, err.value.location) == (f"{art['uid']} (iteration 2)", art["uri"])


class _ETagHandler(SimpleHTTPRequestHandler):
    """Serves files with an ETag of their content, as object stores and web servers do."""

    def end_headers(self):
        path = self.translate_path(self.path)
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                self.send_header("ETag", f'"{hashlib.sha256(fh.read()).hexdigest()[:32]}"')
        super().end_headers()

    def log_message(self, format, *args):  # keep test output quiet
        pass


@pytest.fixture
def etag_server(tmp_path, monkeypatch):
    """Serve ``tmp_path/www`` over HTTP with ETags; yields (base URL, the folder)."""
    monkeypatch.setenv("MLFLOWLET_CACHE_DIR", str(tmp_path / "cache"))
    www = tmp_path / "www"
    www.mkdir()
    serve = functools.partial(_ETagHandler, directory=str(www))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), serve)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_a_linked_remote_object_replaced_since_is_refused_by_its_etag_or_size(etag_server):
    base, www = etag_server
    (www / "model.bin").write_bytes(BODY)

    def handler(context):
        context.log_artifact("model", target_path=f"{base}/model.bin")  # recorded where it is

    run = new_runner().run(new_task(), handler=handler)
    (art,) = run.status.artifacts
    assert art["etag"] and art["size"] == len(BODY)
    assert run.artifact("model").get() == BODY
    (www / "model.bin").write_bytes(b"x,y" + BODY[3:])  # same size, a new ETag
    with pytest.raises(ArtifactIntegrityError) as err:
        run.artifact("model").get()
    etag = hashlib.sha256(b"x,y" + BODY[3:]).hexdigest()[:32]
    assert (err.value.key, err.value.location, err.value.reason) == (
        "model", art["uri"],
        f"ETag {etag!r}, recorded {art['etag']!r} (verify=True compares the hash)")
    (www / "model.bin").write_bytes(BODY + b"5,6\n")
    with pytest.raises(ArtifactIntegrityError) as err:
        run.artifact("model").get()
    assert (err.value.location, err.value.reason) == (
        art["uri"], f"size {len(BODY) + 4} bytes, recorded {len(BODY)}")
