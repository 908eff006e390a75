"""ArtifactManager: keys, file names, atomic writes, hashing, records, remote stores."""

from __future__ import annotations

import json
import os
import sys
import warnings
from datetime import datetime, timezone

import pytest
from blake3 import blake3

from mlflowlet.artifacts import Artifact, ArtifactManager, TableArtifact, validate_key
from mlflowlet.datastore import DataStore, _streams, register_store, registry
from mlflowlet.errors import ArtifactError, DataNotFoundError, PathTraversalError


def blake3_of(data: bytes) -> str:
    """The hash a new version records: BLAKE3, named."""
    return "blake3:" + blake3(data).hexdigest()

PRODUCER = {"uid": "run1", "name": "train", "iteration": 0, "kind": "local"}


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "artifacts" / "run1"
    return path


@pytest.fixture
def manager(root):
    return ArtifactManager(str(root))


@pytest.fixture
def _registry():
    plugins, loaded = dict(registry._plugins), dict(registry._loaded)
    yield
    registry._plugins.clear()
    registry._plugins.update(plugins)
    registry._loaded.clear()
    registry._loaded.update(loaded)


def _files(root):
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
    )


# keys ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    ["..", "../x", "a/../../b", "a/..", "/etc/passwd", "\\share\\x", "C:\\x", "c:x",
     "a\\..\\..\\b", "", "   ", "a\x00b"],
)  # fmt: skip
def test_key_with_dotdot_is_refused(manager, root, key):
    with pytest.raises(PathTraversalError):
        manager.log(key, body=b"x")
    assert not root.exists()


@pytest.mark.parametrize("key", [".", " . "])
def test_key_naming_a_directory_is_refused(manager, key):
    with pytest.raises(ArtifactError, match="must name a file"):
        manager.log(key, body=b"x")


@pytest.mark.parametrize(
    "key", ["a/b", "plots/loss", "v1.2/model", "a/", "a\\b", "../../x", "a\x00b", "\x1b[31mred",
            "tab\there", "del\x7f"],
)  # fmt: skip
def test_key_with_a_separator_or_control_character_is_refused_naming_it(manager, root, key):
    with pytest.raises(PathTraversalError) as info:
        manager.log(key, body=b"x")
    assert repr(key) in str(info.value) and "\n" not in str(info.value)
    assert not root.exists()


@pytest.mark.parametrize("key", ["a", "a..b", "..a", "model.pkl", "Résumé v2.txt"])
def test_safe_keys_are_accepted(key):
    assert validate_key(key) == key


def test_a_target_path_may_name_a_subdirectory(manager, root):
    art = manager.log("loss", body=b"x", target_path="plots/loss.png")
    assert art.uri == str(root / "plots" / "loss.png")
    with pytest.raises(PathTraversalError):
        manager.log("loss", body=b"x", target_path="plots/\x1b[31m.png")


def test_relative_target_path_with_dotdot_is_refused(manager, tmp_path):
    with pytest.raises(PathTraversalError):
        manager.log("k", body=b"x", target_path="../escape.txt")
    assert not (tmp_path / "artifacts" / "escape.txt").exists()


def test_path_traversal_error_is_an_artifact_error_and_value_error():
    with pytest.raises(ArtifactError):
        validate_key("../x")
    with pytest.raises(ValueError):
        validate_key("../x")


# bodies and hashing ----------------------------------------------------------------------------
def test_hash_matches_sha256_of_content(manager):
    art = manager.log("blob", body=b"\x00\x01payload", producer=PRODUCER)
    content = open(art.uri, "rb").read()
    assert content == b"\x00\x01payload"
    assert art.hash == blake3_of(content)
    assert art.size == len(content)


@pytest.mark.parametrize(
    ("body", "name", "expected"),
    [
        (b"raw", "k", b"raw"),
        ("text é", "k.txt", "text é".encode()),
        ({"a": 1}, "k.json", None),
        ([1, 2], "k.json", None),
    ],
)
def test_body_types_are_encoded(manager, root, body, name, expected):
    art = manager.log("k", body=body)
    assert art.uri == str(root / name)
    data = open(art.uri, "rb").read()
    if expected is None:
        assert json.loads(data) == body
        assert art.format == "json"
    else:
        assert data == expected


def test_dataframe_body_on_plain_artifact_is_a_csv_table(manager, root):
    pd = pytest.importorskip("pandas")
    art = manager.log("scores", body=pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert isinstance(art, TableArtifact)
    assert (art.kind, art.format, art.viewer) == ("table", "csv", "table")
    assert open(art.uri).read() == "a,b\n1,x\n2,y\n"
    assert art.uri == str(root / "scores.csv")


def test_bad_body_type_names_key_and_type(manager):
    class Foo:
        pass

    with pytest.raises(ArtifactError) as err:
        manager.log("k", body=Foo())
    assert str(err.value) == (
        "artifact 'k': body must be bytes, str, dict/list or a DataFrame, got Foo "
        "(pass local_path= for files)"
    )


def test_body_and_local_path_together_are_refused(manager, tmp_path):
    src = tmp_path / "f.bin"
    src.write_bytes(b"x")
    with pytest.raises(ArtifactError, match="not both"):
        manager.log("k", body=b"y", local_path=str(src))


def test_nothing_to_store_is_refused(manager):
    with pytest.raises(ArtifactError, match="nothing to store"):
        manager.log("k")


# file names --------------------------------------------------------------------------------
def test_file_name_is_key_plus_suffix(manager, root):
    assert manager.log("loss", body="<html/>", format="html").uri == str(root / "loss.html")
    assert manager.log("page.html", body="<html/>", format="html").uri == str(root / "page.html")


def test_file_name_is_local_path_basename(manager, root, tmp_path):
    src = tmp_path / "model.pkl"
    src.write_bytes(b"weights")
    art = manager.log("model", local_path=str(src))
    assert art.uri == str(root / "model.pkl")
    assert open(art.uri, "rb").read() == b"weights"
    assert art.format == "pkl"


def test_relative_target_path_goes_under_artifact_path(manager, root):
    art = manager.log("k", body=b"x", target_path="deep/dir/out.bin")
    assert art.uri == art.target_path == str(root / "deep" / "dir" / "out.bin")


def test_absolute_target_path_is_used_as_is(manager, tmp_path):
    target = tmp_path / "elsewhere" / "out.bin"
    art = manager.log("k", body=b"x", target_path=str(target))
    assert art.uri == str(target)
    assert target.read_bytes() == b"x"


def test_file_url_artifact_path_is_local(tmp_path):
    art = ArtifactManager((tmp_path / "r").as_uri()).log("k", body=b"x")
    assert art.uri == str(tmp_path / "r" / "k")


# atomic, streamed writes --------------------------------------------------------------------------
def test_write_is_atomic_no_temp_left_and_never_replaces_a_version(manager, root):
    first = manager.log("a", body=b"1" * 10)
    second = manager.log("a", body=b"2" * 10)
    assert _files(root) == ["a", "a.v2"]
    assert (first.uri, second.uri) == (str(root / "a"), str(root / "a.v2"))
    assert (root / "a").read_bytes() == b"1" * 10
    assert (root / "a.v2").read_bytes() == b"2" * 10


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out" / "f.bin"
    target.parent.mkdir()
    target.write_bytes(b"old")

    def chunks():
        yield b"new part"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _streams.write_atomic(str(target), chunks())
    assert target.read_bytes() == b"old"
    assert os.listdir(target.parent) == ["f.bin"]


@pytest.mark.skipif(not hasattr(os, "copy_file_range"), reason="needs copy_file_range (Linux)")
def test_large_local_path_is_copied_by_the_kernel_in_bounded_slices(manager, tmp_path, monkeypatch):
    src = tmp_path / "big.bin"
    data = os.urandom(3 * (1 << 20) + 7)
    src.write_bytes(data)
    slices: list[int] = []
    real_copy = os.copy_file_range

    def spy(*args):
        slices.append(args[2])
        return real_copy(*args)

    def no_write(fd, buf):
        raise AssertionError("bytes went through Python's os.write")

    monkeypatch.setattr(_streams, "COPY_SLICE", 1 << 20)
    monkeypatch.setattr(_streams, "HASH_CHUNK", 1 << 20)
    monkeypatch.setattr(_streams.os, "copy_file_range", spy)
    monkeypatch.setattr(_streams.os, "write", no_write)
    art = manager.log("big", local_path=str(src))
    monkeypatch.undo()
    assert open(art.uri, "rb").read() == data
    assert art.hash == blake3_of(data)
    assert art.size == len(data)
    assert len(slices) >= 4
    assert max(slices) <= 1 << 20


def test_upload_false_records_local_path_without_copy(manager, root, tmp_path):
    src = tmp_path / "data.bin"
    src.write_bytes(b"abc")
    art = manager.log("data", local_path=str(src), upload=False)
    assert art.uri == str(src)
    assert art.hash == blake3_of(b"abc")
    assert art.size == 3
    assert not root.exists()


def test_missing_local_path_names_key_and_path(manager, tmp_path):
    missing = tmp_path / "nope.bin"
    with pytest.raises(DataNotFoundError) as err:
        manager.log("weights", local_path=str(missing))
    assert str(err.value) == f"artifact 'weights': no such file '{missing}'"


def test_local_path_already_in_place_is_not_copied(manager, root):
    root.mkdir(parents=True)
    (root / "in_place.bin").write_bytes(b"here")
    mtime = os.stat(root / "in_place.bin").st_mtime_ns
    art = manager.log("k", local_path=str(root / "in_place.bin"))
    assert art.uri == str(root / "in_place.bin")
    assert os.stat(root / "in_place.bin").st_mtime_ns == mtime
    assert art.hash == blake3_of(b"here")


def test_existing_target_can_be_linked_without_a_body(manager, tmp_path):
    existing = tmp_path / "existing.bin"
    existing.write_bytes(b"12345")
    art = manager.log("k", target_path=str(existing))
    assert (art.uri, art.size, art.hash) == (str(existing), 5, None)


# records ------------------------------------------------------------------------------------
def test_record_fields_are_filled(manager):
    art = manager.log("k", body=b"x", producer=PRODUCER, project="proj", iteration=3, tag="v1")
    assert art.producer == PRODUCER
    assert (art.project, art.tree, art.iteration, art.tag) == ("proj", "run1", 3, "v1")
    updated = datetime.fromisoformat(art.updated)
    assert updated.utcoffset() == timezone.utc.utcoffset(None)
    assert abs((datetime.now(timezone.utc) - updated).total_seconds()) < 60
    assert manager.log("k2", body=b"x", tree="pipe9").tree == "pipe9"
    assert manager.log("k3", body=b"x").tag == "latest"


def test_uid_is_stable_per_content_and_producer(manager):
    a = manager.log("k", body=b"same", producer=PRODUCER).uid
    b = manager.log("k", body=b"same", producer=PRODUCER).uid
    c = manager.log("k", body=b"other", producer=PRODUCER).uid
    d = manager.log("k", body=b"same", producer={**PRODUCER, "uid": "run2"}).uid
    assert a == b
    assert len({a, c, d}) == 3


def test_overrides_apply_to_an_artifact_object(manager, root):
    art = Artifact("page", body="<p>old</p>", viewer="web-app", format="html", labels={"a": "1"})
    out = manager.log(art, body="<p>new</p>", labels={"b": "2"}, tag="t")
    assert out is art
    assert open(art.uri).read() == "<p>new</p>"
    assert art.labels == {"a": "1", "b": "2"}
    assert (art.viewer, art.format, art.tag) == ("web-app", "html", "t")
    assert art.uri == str(root / "page.html")


def test_log_rejects_other_item_types(manager):
    with pytest.raises(ArtifactError, match="key or an Artifact"):
        manager.log(42, body=b"x")


# remote destinations ------------------------------------------------------------------------------
class RecordingStore(DataStore):
    objects: dict[str, bytes] = {}
    calls: list[tuple[str, str]] = []

    def get(self, url, size=None, offset=0):
        return self.objects[url]

    def put(self, url, data):
        self.calls.append(("put", url))
        self.objects[url] = bytes(data)

    def upload(self, url, path):
        self.calls.append(("upload", url))
        self.objects[url] = open(path, "rb").read()

    def stat(self, url):
        if url not in self.objects:
            raise DataNotFoundError(url)
        return {"size": len(self.objects[url]), "modified": None, "etag": f"e{len(self.calls)}"}

    def listdir(self, url):
        return []


def test_remote_destination_goes_through_the_store(_registry, tmp_path):
    RecordingStore.objects.clear()  # class-level: a rerun in the same process starts empty
    RecordingStore.calls.clear()
    register_store("rec", RecordingStore)
    manager = ArtifactManager("rec://bucket/runs/run1/")
    art = manager.log("metrics", body={"acc": 0.9}, secrets={"K": "v"})
    assert art.uri == "rec://bucket/runs/run1/metrics.json"
    assert json.loads(RecordingStore.objects[art.uri]) == {"acc": 0.9}
    assert art.hash == blake3_of(RecordingStore.objects[art.uri])
    src = tmp_path / "model.bin"
    src.write_bytes(b"m" * 100)
    art = manager.log("model", local_path=str(src))
    assert art.uri == "rec://bucket/runs/run1/model.bin"
    assert RecordingStore.calls[-2:] == [
        ("put", "rec://bucket/runs/run1/metrics.json"),
        ("upload", "rec://bucket/runs/run1/model.bin"),
    ]
    assert (art.size, art.hash) == (100, blake3_of(b"m" * 100))
    assert (art.etag, art.owned) == ("e2", True)
    again = manager.log("model", local_path=str(src))  # a second version: a name of its own
    assert again.uri == "rec://bucket/runs/run1/model.v2.bin"
    assert RecordingStore.objects[art.uri] == b"m" * 100


def test_key_with_an_extension_keeps_it_for_a_str_body(manager, root):
    art = manager.log("results.html", body="<b>hi</b>", viewer="web-app")
    assert art.uri == str(root / "results.html")
    assert art.format == "html"


def test_web_app_viewer_without_extension_stores_html(manager, root):
    assert manager.log("report", body="<p>x</p>", viewer="web-app").uri == str(root / "report.html")


def test_body_with_a_local_path_that_does_not_exist_names_the_file(manager, root):
    art = manager.log("model", body=b"weights", local_path="model.pkl")  # MLRun's form
    assert art.uri.endswith("model.pkl") and art.format == "pkl"
    assert (root / "model.pkl").read_bytes() == b"weights"


# exact records, targets and messages (each kills a one-line change mutation testing found) -------
class SecretsSeenStore(RecordingStore):
    seen: list = []

    def __init__(self, secrets=None, **options):
        super().__init__(secrets)
        self.seen.append(secrets)


@pytest.fixture
def rec(_registry):
    for store in (RecordingStore, SecretsSeenStore):
        store.objects.clear()
        store.calls.clear()
    SecretsSeenStore.seen.clear()
    register_store("rec", SecretsSeenStore)
    return SecretsSeenStore


def test_an_empty_artifact_path_and_a_bad_item_are_named_exactly():
    with pytest.raises(ArtifactError) as err:
        ArtifactManager("")
    assert str(err.value) == "an artifact path is required"
    with pytest.raises(ArtifactError) as err:
        ArtifactManager("/tmp/x").log(42, body=b"x")
    assert str(err.value) == "log() takes a key or an Artifact, got int"


def test_a_remote_artifact_path_loses_its_trailing_slash_and_keeps_its_leading_one(rec):
    assert ArtifactManager("rec://bucket/runs/run1/").artifact_path == "rec://bucket/runs/run1"
    assert ArtifactManager("rec:///abs/x/").artifact_path == "rec:///abs/x"
    assert ArtifactManager("rec://bucket/runX//").artifact_path == "rec://bucket/runX"


def test_an_artifact_logged_without_producer_has_empty_record_fields(manager):
    art = manager.log("k", body=b"x")
    assert (art.project, art.tree, art.iteration, art.producer) == ("", "", 0, {})
    assert len(art.uid) == 32 and art.format is None  # a bytes body names no format
    assert art.mtime_ns == os.stat(art.uri).st_mtime_ns and art.owned is True


@pytest.mark.parametrize("iteration", [0, 2])
def test_an_absolute_target_gets_the_producing_runs_directory(manager, tmp_path, iteration):
    shared = tmp_path / "shared"
    sub = f"run1/{iteration}" if iteration else "run1"
    art = manager.log("k", body=b"x", target_path=str(shared / "out.txt"), producer=PRODUCER,
                      iteration=iteration)
    assert art.uri == str(shared / sub / "out.txt")
    # a file:// URL is that absolute path (it once landed under the artifact path as 'file:/...')
    url = manager.log("k2", body=b"y", target_path=f"file://{shared}/url.txt", producer=PRODUCER,
                      iteration=iteration)
    assert url.uri == str(shared / sub / "url.txt")
    bare = manager.log("k3", body=b"z", target_path=str(shared / "bare.txt"))
    assert bare.uri == str(shared / "bare.txt")


def test_a_remote_target_gets_the_run_directory_and_the_secrets(manager, rec):
    secrets = {"K": "v"}
    art = manager.log("m", body=b"abc", target_path="rec://bucket/shared/m.bin",
                      producer=PRODUCER, iteration=4, secrets=secrets)
    assert art.uri == "rec://bucket/shared/run1/4/m.bin"
    assert rec.objects[art.uri] == b"abc" and art.format == "bin"
    assert rec.seen and all(seen is secrets for seen in rec.seen)
    rec.seen.clear()
    linked = manager.log("m2", target_path=art.uri, secrets=secrets)  # link it where it is
    assert (linked.uri, linked.size, linked.owned) == (art.uri, 3, False)
    assert rec.seen and all(seen is secrets for seen in rec.seen)


def test_upload_false_and_linked_files_are_not_owned(manager, root, tmp_path):
    src = tmp_path / "model.bin"
    src.write_bytes(b"m")
    assert manager.log("a", local_path=str(src), upload=False).owned is False
    root.mkdir(parents=True)
    (root / "k").write_bytes(b"12")
    (root / "sub").mkdir()
    (root / "sub" / "e.bin").write_bytes(b"123")
    assert (manager.log("k").uri, manager.log("k").owned) == (str(root / "k"), False)
    linked = manager.log("e", target_path="sub/e.bin")
    assert (linked.uri, linked.size) == (str(root / "sub" / "e.bin"), 3)
    by_url = manager.log("u", target_path=f"file://{root}/sub/e.bin")
    assert by_url.uri == str(root / "sub" / "e.bin")


def test_a_missing_object_to_link_is_named_with_its_key(manager, root):
    with pytest.raises(ArtifactError) as err:
        manager.log("gone", target_path="nowhere.bin")
    assert str(err.value) == (
        f"artifact 'gone': nothing to store: pass a body or a local_path, or a target_path "
        f"that exists ({str(root / 'nowhere.bin')!r} does not)"
    )


def test_a_symlink_cannot_lead_a_write_out_of_the_artifact_path(manager, root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir(parents=True)
    (root / "link").symlink_to(outside)
    with pytest.raises(ArtifactError) as err:
        manager.log("k", body=b"x", target_path="link/x.txt")
    dest = str(root / "link" / "x.txt")
    assert str(err.value) == f"artifact 'k': {dest!r} is outside {str(root)!r}"
    assert not (outside / "x.txt").exists()


def test_a_symlink_to_a_file_outside_cannot_take_a_write_either(manager, root, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"keep")
    root.mkdir(parents=True)
    (root / "x.txt").symlink_to(outside)  # the name itself is the link
    with pytest.raises(ArtifactError, match="is outside"):
        manager.log("k", body=b"x", target_path="x.txt")
    assert outside.read_bytes() == b"keep"


def test_a_symlink_that_stays_inside_the_artifact_path_is_followed(manager, root):
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real")
    art = manager.log("k", body=b"x", target_path="alias/x.txt")
    assert art.uri == str(root / "alias" / "x.txt")
    assert (root / "real" / "x.txt").read_bytes() == b"x"


def test_an_artifact_path_that_is_itself_a_symlink_takes_writes(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    art = ArtifactManager(str(tmp_path / "link")).log("k", body=b"x", target_path="d/x.txt")
    assert art.uri == str(tmp_path / "link" / "d" / "x.txt")
    assert (real / "d" / "x.txt").read_bytes() == b"x"


def _log_artifact(manager, key, body):  # stands for Context.log_artifact: the user's caller
    return manager.log(key, body=body)


def test_a_body_over_the_limit_warns_at_the_users_line(manager, monkeypatch):
    from mlflowlet.artifacts import manager as module

    monkeypatch.setattr(module, "BODY_WARN_BYTES", 2 << 20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _log_artifact(manager, "at-limit", b"x" * (2 << 20))
        assert caught == []
        line = sys._getframe().f_lineno + 1
        _log_artifact(manager, "big", b"x" * (3 << 20))
    (warning,) = caught
    assert str(warning.message) == (
        "artifact 'big': a body of 3 MiB is held in memory; write it to a file and pass "
        "local_path= to stream it with bounded memory"
    )
    if "mutmut" not in warning.filename:  # mutation testing's trampoline adds a frame of its own
        assert (warning.filename, warning.lineno) == (__file__, line)


def test_a_dataframe_body_keeps_the_artifacts_settings(manager, root):
    pd = pytest.importorskip("pandas")
    art = Artifact("t", body=pd.DataFrame({"a": [1]}), target_path="tables/t.csv",
                   labels={"x": "1"}, tag="v2")
    out = manager.log(art)
    assert isinstance(out, TableArtifact)
    assert out.uri == str(root / "tables" / "t.csv")
    assert (out.labels, out.tag, out.viewer, out.format) == ({"x": "1"}, "v2", "table", "csv")
    tsv = manager.log(Artifact("p", body=pd.DataFrame({"a": [1]}), format="tsv"))
    assert tsv.format == "tsv" and tsv.uri == str(root / "p.tsv")


def test_uid_covers_the_producer_and_takes_any_producer_uid(manager):
    import uuid

    a = manager.log("k", body=b"same", producer=PRODUCER, tree="t").uid
    b = manager.log("k", body=b"same", producer={**PRODUCER, "uid": "run2"}, tree="t").uid
    c = manager.log("k", body=b"same", producer={**PRODUCER, "uid": uuid.UUID(int=7)}).uid
    assert len({a, b, c}) == 3 and all(len(u) == 32 for u in (a, b, c))
