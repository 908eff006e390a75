"""DataItem, the store registry, local files and store:// references."""

from __future__ import annotations

import json
import os
import sys

import pytest

from mlflowlet.datastore import (
    DataItem,
    DataStore,
    get_dataitem,
    get_store,
    register_store,
    registry,
)
from mlflowlet.datastore.filestore import FileStore
from mlflowlet.datastore.storeref import parse_store_url
from mlflowlet.errors import (
    ConfigError,
    DataNotFoundError,
    DataStoreError,
    MissingDependencyError,
    UnknownBackendError,
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch, tmp_path):
    """Private cache dir, and a registry restored after each test."""
    monkeypatch.setenv("MLFLOWLET_CACHE_DIR", str(tmp_path / "cache"))
    plugins, loaded = dict(registry._plugins), dict(registry._loaded)
    yield
    registry._plugins.clear()
    registry._plugins.update(plugins)
    registry._loaded.clear()
    registry._loaded.update(loaded)


@pytest.fixture
def rundb(dbdir):
    """The test's real SQLite run DB (the one ``get_run_db()`` opens)."""
    from mlflowlet.db import get_run_db

    return get_run_db()


def add(db, project, key, uri, tag="", uid="u1", **extra):
    """Record one artifact version in the run DB (``latest`` moves to it)."""
    db.store_artifact(key, {"uri": uri, **extra}, uid=uid, tag=tag, project=project)


@pytest.fixture
def infile(tmp_path):
    path = tmp_path / "infile.txt"
    path.write_bytes(b"hello world")
    return path


# local files -------------------------------------------------------------------------------
def test_plain_path_and_file_url_read_the_same_file(infile):
    plain = get_dataitem(str(infile))
    url = get_dataitem(infile.as_uri())
    assert plain.get() == url.get() == b"hello world"
    assert plain.local() == url.local() == str(infile)


def test_get_reads_a_range(infile):
    assert get_dataitem(str(infile)).get(size=5, offset=6) == b"world"
    assert get_dataitem(str(infile)).get(offset=6) == b"world"


def test_missing_input_names_the_key_and_path(tmp_path):
    path = tmp_path / "infile.txt"
    item = DataItem("infile.txt", str(path))
    for call in (item.get, item.local, item.stat, item.as_df):
        with pytest.raises(DataNotFoundError) as err:
            call()
        assert str(err.value) == f"input 'infile.txt': no such file '{path}'"


def test_missing_file_without_key_names_the_path(tmp_path):
    path = tmp_path / "nope.bin"
    with pytest.raises(FileNotFoundError, match="no such file") as err:
        get_dataitem(str(path)).get()
    assert str(path) in str(err.value)


def test_put_str_writes_utf8_atomically(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    item = get_dataitem(str(target))
    item.put("grüße")
    assert target.read_bytes() == "grüße".encode()
    assert os.listdir(target.parent) == ["out.txt"]


def test_open_wb_publishes_only_on_clean_close(tmp_path):
    target = tmp_path / "out" / "f.bin"
    target.parent.mkdir()
    target.write_bytes(b"old")
    item = get_dataitem(str(target))
    with pytest.raises(RuntimeError):
        with item.open("wb") as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert os.listdir(target.parent) == ["f.bin"]
    with item.open("wb") as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"


def test_stat_listdir_upload_download(tmp_path, infile):
    folder = tmp_path / "dir"
    item = get_dataitem(str(folder / "copy.txt"))
    item.upload(str(infile))
    assert item.stat()["size"] == len(b"hello world")
    assert get_dataitem(str(folder)).listdir() == ["copy.txt"]
    item.download(str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_bytes() == b"hello world"


def test_str_and_repr_show_the_url(infile):
    item = DataItem("x", str(infile))
    assert str(item) == str(infile)
    assert repr(item) == f"DataItem(key='x', url={str(infile)!r})"
    assert item.meta is None
    assert item.suffix == ".txt"


# as_df ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "parquet", "json", "jsonl", "tsv"])
def test_as_df_reads_by_suffix(tmp_path, fmt):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "tsv":
        df.to_csv(path, index=False, sep="\t")
    elif fmt == "parquet":
        df.to_parquet(path, index=False)
    elif fmt == "json":
        df.to_json(path, orient="records")
    else:
        df.to_json(path, orient="records", lines=True)
    pd.testing.assert_frame_equal(get_dataitem(str(path)).as_df(), df)


def test_as_df_format_overrides_the_suffix(tmp_path):
    pytest.importorskip("pandas")
    path = tmp_path / "data.bin"
    path.write_text("a,b\n1,2\n")
    df = get_dataitem(str(path)).as_df(format="csv")
    assert df.to_dict("list") == {"a": [1], "b": [2]}


def test_as_df_unknown_format_names_the_choices(tmp_path):
    path = tmp_path / "data.bin"
    path.write_text("?")
    with pytest.raises(DataStoreError, match="input 'raw'.*pass format= one of csv"):
        DataItem("raw", str(path)).as_df()


def test_as_df_without_pandas_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "data.csv"
    path.write_text("a\n1\n")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingDependencyError, match=r"mlflowlet\[pandas\]"):
        get_dataitem(str(path)).as_df()


# registry --------------------------------------------------------------------------------------
class MemStore(DataStore):
    objects: dict[str, bytes] = {}

    def get(self, url, size=None, offset=0):
        try:
            data = self.objects[url]
        except KeyError:
            raise DataNotFoundError(f"no such object '{url}'") from None
        return data[offset:] if size is None else data[offset : offset + size]

    def put(self, url, data):
        self.objects[url] = bytes(data)

    def stat(self, url):
        return {"size": len(self.get(url)), "modified": None, "etag": None}

    def listdir(self, url):
        prefix = url.rstrip("/") + "/"
        return sorted(k[len(prefix) :] for k in self.objects if k.startswith(prefix))


def test_registered_store_class_serves_its_scheme_with_default_streaming(tmp_path, infile):
    register_store("mem", MemStore)
    item = get_dataitem("mem://bucket/a.txt")
    item.upload(str(infile))  # default upload: open('wb') + put
    assert MemStore.objects["mem://bucket/a.txt"] == b"hello world"
    assert item.get(size=5) == b"hello"
    local = item.local()
    assert open(local, "rb").read() == b"hello world"
    assert local.startswith(str(tmp_path / "cache"))
    assert get_dataitem("mem://bucket").listdir() == ["a.txt"]


def test_register_store_by_dotted_path():
    register_store("myfile", "mlflowlet.datastore.filestore:FileStore")
    assert type(get_store("myfile://x")) is FileStore


def test_register_store_rejects_non_stores():
    with pytest.raises(ConfigError):
        register_store("bad", dict)
    with pytest.raises(ConfigError):
        register_store("bad", "no_colon_here")


def test_unknown_scheme_lists_available():
    with pytest.raises(UnknownBackendError) as err:
        get_store("nosuchscheme://bucket/key")
    assert "nosuchscheme" in str(err.value)
    assert {"file", "http", "https", "s3", "store"} <= set(err.value.available)


def test_store_module_that_is_missing_is_named():
    register_store("gone", "mlflowlet.datastore.not_written_yet:GoneStore")
    with pytest.raises(ConfigError, match="mlflowlet.datastore.not_written_yet"):
        get_store("gone://x")


def test_fsspec_scheme_roundtrip():
    pytest.importorskip("fsspec")
    item = get_dataitem("memory://mlflowlet-test/dir/x.bin")
    item.put(b"abcdef")
    assert item.get(size=3, offset=2) == b"cde"
    assert item.stat()["size"] == 6
    assert get_dataitem("memory://mlflowlet-test/dir").listdir() == ["x.bin"]
    with pytest.raises(DataNotFoundError):
        get_dataitem("memory://mlflowlet-test/missing").get()
    # a file is no directory (fsspec lists a file as itself), as on the local and S3 stores
    with pytest.raises(DataStoreError, match="'memory://mlflowlet-test/dir/x.bin' is a file"):
        item.listdir()
    assert get_store("memory://mlflowlet-test/dir").walk("memory://mlflowlet-test/dir/") == [
        "x.bin"]
    assert get_store("memory://mlflowlet-test/dir").walk("memory://mlflowlet-test/dir/x.bin") == []


def test_secrets_reach_the_store():
    store = get_store("/tmp/x", secrets={"TOKEN": "t0k"})
    assert store.secret("TOKEN") == "t0k"
    assert store.secret("OTHER", "dflt") == "dflt"


# store:// references -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "key", "tag", "uid", "iteration"),
    [
        ("store://artifacts/p/model", "model", "latest", None, None),
        ("store://artifacts/p/dir/sub/model:v2", "dir/sub/model", "v2", None, None),
        ("store://artifacts/p/model@abc123", "model", "", "abc123", None),
        ("store://artifacts/p/model#3:prod", "model", "prod", None, 3),
    ],
)
def test_parse_store_url(url, key, tag, uid, iteration):
    ref = parse_store_url(url)
    assert (ref.project, ref.key, ref.tag) == ("p", key, tag)
    assert (ref.uid, ref.iteration) == (uid, iteration)


@pytest.mark.parametrize(
    "url", ["store://models/p/k", "store://artifacts/p", "store://artifacts//k"]
)
def test_bad_store_url_is_refused(url):
    with pytest.raises(ConfigError, match="bad store URL"):
        parse_store_url(url)


def test_store_ref_resolves_through_the_db(rundb, infile):
    add(rundb, "other", "data", "/nowhere/other-project.txt")
    add(rundb, "proj", "data", str(infile), format="txt")
    item = get_dataitem("store://artifacts/proj/data", key="data", db=rundb)
    assert item.get() == b"hello world"
    assert (item.meta["uri"], item.meta["format"], item.meta["project"]) == (
        str(infile), "txt", "proj")
    rundb.del_artifact("data", project="proj")  # resolved once per item: the record is kept
    assert item.local() == str(infile)
    assert item.get(size=5) == b"hello"


def test_store_ref_by_tag_and_uid(tmp_path, rundb):
    v1, v2 = tmp_path / "v1.txt", tmp_path / "v2.txt"
    v1.write_text("one")
    v2.write_text("two")
    db = rundb
    add(db, "p", "k", str(v1), tag="v1", uid="aaa")
    add(db, "p", "k", str(v2), uid="bbb")
    assert get_dataitem("store://artifacts/p/k:v1", db=db).get() == b"one"
    assert get_dataitem("store://artifacts/p/k@aaa", db=db).get() == b"one"
    assert get_dataitem("store://artifacts/p/k@bbb", db=db).get() == b"two"
    assert get_dataitem("store://artifacts/p/k", db=db).get() == b"two"


def test_store_ref_missing_artifact_names_the_url(rundb, infile):
    add(rundb, "p", "k", str(infile), tag="v1")
    with pytest.raises(
        DataNotFoundError, match=r"input 'm': no artifact 'store://artifacts/p/k:v9'"
    ):
        DataItem("m", "store://artifacts/p/k:v9", db=rundb).get()


def test_store_ref_is_read_only(rundb, infile):
    db = rundb
    add(db, "p", "k", str(infile))
    with pytest.raises(DataStoreError, match="read-only"):
        get_store("store://artifacts/p/k", db=db).put("store://artifacts/p/k", b"x")
    assert infile.read_bytes() == b"hello world"


def test_dataitem_cannot_write_through_a_store_ref(rundb, infile, tmp_path):
    db = rundb
    add(db, "p", "k", str(infile))
    item = get_dataitem("store://artifacts/p/k", db=db)
    other = tmp_path / "other.txt"
    other.write_text("x")
    for write in (
        lambda: item.put(b"new"),
        lambda: item.upload(str(other)),
        lambda: item.open("wb"),
    ):
        with pytest.raises(DataStoreError, match="read-only"):
            write()
    assert infile.read_bytes() == b"hello world"


def test_store_ref_through_get_store_delegates(rundb, infile):
    db = rundb
    add(db, "p", "k", str(infile))
    store = get_store("store://artifacts/p/k", db=db)
    assert store.get("store://artifacts/p/k", size=5) == b"hello"
    assert store.stat("store://artifacts/p/k")["size"] == 11


def test_store_ref_without_db_uses_get_run_db(tmp_path, monkeypatch, infile):
    from mlflowlet.db import get_run_db

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    add(get_run_db(str(elsewhere)), "p", "k", str(infile))
    with pytest.raises(DataNotFoundError):  # not in the DB MLFLOWLET_DBPATH names
        get_dataitem("store://artifacts/p/k").get()
    monkeypatch.setenv("MLFLOWLET_DBPATH", str(elsewhere))
    assert get_dataitem("store://artifacts/p/k").get() == b"hello world"


def test_known_artifact_record_needs_no_db(infile):
    record = {"key": "k", "uri": str(infile), "format": "txt"}
    item = DataItem("k", "store://artifacts/p/k", artifact=record)
    assert item.get() == b"hello world"
    assert item.meta == record


def test_store_ref_as_df_uses_the_record_format(tmp_path, rundb):
    pytest.importorskip("pandas")
    path = tmp_path / "blob"
    path.write_text(json.dumps([{"a": 1}, {"a": 2}]))
    add(rundb, "p", "rows", str(path), format="json")
    df = get_dataitem("store://artifacts/p/rows", db=rundb).as_df()
    assert df["a"].tolist() == [1, 2]


def test_store_ref_at_the_producing_run_uid_reads_its_artifact():
    from mlflowlet import new_runner

    def handler(context):
        context.log_artifact("model.txt", body=b"weights")

    run = new_runner().run(handler=handler)
    assert get_dataitem(f"store://artifacts/{run.metadata.project}/model.txt@{run.uid}").get() == (
        b"weights"
    )
    with pytest.raises(DataNotFoundError, match="no artifact"):
        get_dataitem(f"store://artifacts/{run.metadata.project}/model.txt@nosuchrun").get()
