"""Directory artifacts: stored whole as new versions, hashed over their content, checked on read."""

import os

import pytest

from mlflowlet.artifacts import ArtifactManager
from mlflowlet.datastore import get_dataitem
from mlflowlet.datastore._dirtree import hash_tree
from mlflowlet.errors import ArtifactError, ArtifactIntegrityError, DataStoreError


def make_tree(root, files=None):
    files = files or {"weights.bin": b"w" * 5, "sub dir/config ü.json": b'{"a": 1}'}
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def listing(root):
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = open(path, "rb").read()
    return out


def test_a_directory_is_a_new_version_each_time_never_overwritten(tmp_path):
    src = make_tree(tmp_path / "model dir")
    mgr = ArtifactManager(str(tmp_path / "arts"))
    first = mgr.log("model", local_path=str(src))
    (src / "weights.bin").write_bytes(b"changed")
    second = mgr.log("model", local_path=str(src))
    assert first.format == second.format == "dir"
    assert first.uri == str(tmp_path / "arts" / "model dir")
    assert second.uri == str(tmp_path / "arts" / "model dir.v2")
    assert listing(first.uri)["weights.bin"] == b"w" * 5  # the first version kept its bytes
    assert listing(second.uri)["weights.bin"] == b"changed"
    assert first.size == 5 + 8 and second.size == 7 + 8
    assert first.hash != second.hash and first.uid != second.uid
    algo = first.hash.split(":")[0]
    assert second.hash == f"{algo}:{hash_tree(str(src), algo)[0]}"
    assert not [n for n in os.listdir(tmp_path / "arts") if n.startswith(".tmp")]


def test_the_hash_covers_content_and_relative_paths_not_location_or_order(tmp_path):
    a = make_tree(tmp_path / "a")
    b = tmp_path / "elsewhere" / "b"
    make_tree(b, {"sub dir/config ü.json": b'{"a": 1}', "weights.bin": b"w" * 5})  # other order
    assert hash_tree(str(a), "sha256") == hash_tree(str(b), "sha256")
    (b / "weights.bin").rename(b / "weights2.bin")  # same bytes, another name
    assert hash_tree(str(a), "sha256")[0] != hash_tree(str(b), "sha256")[0]
    (b / "weights2.bin").rename(b / "weights.bin")
    (b / "empty").mkdir()  # an empty folder is content too
    assert hash_tree(str(a), "sha256")[0] != hash_tree(str(b), "sha256")[0]


def test_an_empty_directory_is_a_version_of_its_own(tmp_path):
    (tmp_path / "empty").mkdir()
    art = ArtifactManager(str(tmp_path / "arts")).log("nothing", local_path=str(tmp_path / "empty"))
    assert art.format == "dir" and art.size == 0 and os.listdir(art.uri) == []
    assert get_dataitem(art.uri, artifact=art).local(verify=True) == art.uri


def test_a_symlink_out_of_the_directory_is_refused_naming_it_and_nothing_is_written(tmp_path):
    src = make_tree(tmp_path / "model")
    (tmp_path / "secret.txt").write_text("not in the model")
    os.symlink(tmp_path / "secret.txt", src / "sub dir" / "leak")
    arts = tmp_path / "arts"
    with pytest.raises(ArtifactError) as err:
        ArtifactManager(str(arts)).log("model", local_path=str(src))
    assert "'sub dir/leak'" in str(err.value) and "symlink out of the directory" in str(err.value)
    assert "\n" not in str(err.value)
    assert not arts.exists() or os.listdir(arts) == []


def test_a_symlink_inside_is_stored_as_the_files_bytes_and_a_symlinked_folder_is_refused(tmp_path):
    src = make_tree(tmp_path / "model")
    os.symlink(src / "weights.bin", src / "alias.bin")
    art = ArtifactManager(str(tmp_path / "arts")).log("model", local_path=str(src))
    stored = os.path.join(art.uri, "alias.bin")
    assert not os.path.islink(stored) and open(stored, "rb").read() == b"w" * 5
    os.symlink(src / "sub dir", src / "loop")
    with pytest.raises(ArtifactError, match="'loop' .* is a symlinked folder"):
        ArtifactManager(str(tmp_path / "arts2")).log("model", local_path=str(src))


def test_reading_a_changed_directory_version_fails_instead_of_returning_other_bytes(tmp_path):
    src = make_tree(tmp_path / "model")
    art = ArtifactManager(str(tmp_path / "arts")).log("model", local_path=str(src))
    item = get_dataitem(art.uri, key="model", artifact=art)
    assert listing(item.local(verify=True)) == listing(src)
    stored = os.path.join(art.uri, "weights.bin")
    with open(stored, "wb") as fh:
        fh.write(b"W" * 5)  # same size, new bytes, a later mtime
    with pytest.raises(ArtifactIntegrityError, match="modified after it was recorded"):
        get_dataitem(art.uri, key="model", artifact=art).local()
    with open(stored, "ab") as fh:
        fh.write(b"more")
    with pytest.raises(ArtifactIntegrityError, match="size 17 bytes, recorded 13"):
        get_dataitem(art.uri, key="model", artifact=art).local()


def test_upload_false_records_the_directory_where_it_is(tmp_path):
    src = make_tree(tmp_path / "model")
    art = ArtifactManager(str(tmp_path / "arts")).log("model", local_path=str(src), upload=False)
    assert art.uri == str(src) and art.format == "dir" and art.owned is False
    assert art.hash.endswith(hash_tree(str(src), art.hash.split(":")[0])[0])


@pytest.fixture
def s3(seaweedfs, monkeypatch):
    bucket = f"dirs-{os.urandom(6).hex()}"
    seaweedfs.client().create_bucket(Bucket=bucket)
    for name, value in seaweedfs.secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOWLET_CACHE_DIR", str(os.path.join(os.getcwd(), "cache")))
    return bucket


def test_a_directory_version_in_s3_is_uploaded_whole_and_fetched_as_a_folder(tmp_path, s3):
    src = make_tree(tmp_path / "model dir")
    mgr = ArtifactManager(f"s3://{s3}/runs/r1")
    first = mgr.log("model", local_path=str(src))
    second = mgr.log("model", local_path=str(src))
    base = f"s3://{s3}/runs/r1/model dir"
    assert (first.uri, second.uri) == (base, f"{base}.v2")
    assert first.hash == second.hash and first.format == "dir"
    local = get_dataitem(first.uri, key="model", artifact=first).local(verify=True)
    assert listing(local) == listing(src)
    get_dataitem(first.uri, key="model", artifact=first).download(tmp_path / "dl", verify=True)
    assert listing(tmp_path / "dl") == listing(src)
    (src / "empty").mkdir()
    with pytest.raises(ArtifactError, match="folder 'empty' in it is empty"):
        mgr.log("model", local_path=str(src))


def test_gc_removes_a_deleted_runs_directory_version_and_doctor_checks_it(dbdir, tmp_path):
    from mlflowlet import get_run_db, new_runner, new_task
    from mlflowlet.artifacts import collect_garbage, verify_artifacts

    src = make_tree(tmp_path / "model")

    def handler(context):
        context.log_artifact("model", local_path=str(src))

    keep = new_runner().run(new_task(name="keep", artifact_path="out"), handler=handler)
    drop = new_runner().run(new_task(name="drop", artifact_path="out"), handler=handler)
    kept, dropped = (r.status.artifacts[0]["uri"] for r in (keep, drop))
    assert verify_artifacts().problems == [] and verify_artifacts().checked == 2
    with open(os.path.join(kept, "weights.bin"), "wb") as fh:
        fh.write(b"tampered")
    [problem] = verify_artifacts().problems
    assert "'model'" in problem and "recorded" in problem
    get_run_db().del_runs(name="drop")
    report = collect_garbage()
    assert report.files == [dropped] and not os.path.exists(dropped)
    assert os.path.isdir(kept)


def test_gc_removes_every_object_of_a_deleted_runs_directory_version_in_s3(
    dbdir, tmp_path, s3, seaweedfs
):
    from mlflowlet import get_run_db, new_runner, new_task
    from mlflowlet.artifacts import collect_garbage

    src = make_tree(tmp_path / "model")

    def handler(context):
        context.log_artifact("model", local_path=str(src))

    for name in ("keep", "drop"):
        new_runner().run(new_task(name=name, artifact_path=f"s3://{s3}/{name}"), handler=handler)
    get_run_db().del_runs(name="drop")
    assert len(collect_garbage().files) == 1
    left = seaweedfs.client().list_objects_v2(Bucket=s3).get("Contents", [])
    assert sorted(o["Key"].split("/", 2)[0] for o in left) == ["keep", "keep"]


@pytest.mark.parametrize("change", ["rename", "delete_empty", "add_old_empty"])
def test_a_renamed_added_or_removed_entry_in_a_recorded_tree_is_caught_on_read(tmp_path, change):
    # none of these moves the total size or the newest *file* time: a stamp of files only
    # hands back another tree than the one recorded; the folder's time moves
    src = make_tree(tmp_path / "model", {"weights.bin": b"w" * 5, "sub/empty.txt": b"",
                                          "sub/late.txt": b"x"})
    for dirpath, _dirs, files in os.walk(src):  # an old tree: every later change is newer
        for name in files:
            os.utime(os.path.join(dirpath, name), ns=(10**9, 10**9))
        os.utime(dirpath, ns=(10**9, 10**9))
    art = ArtifactManager(str(tmp_path / "arts")).log("model", local_path=str(src), upload=False)
    assert get_dataitem(art.uri, key="model", artifact=art).local() == str(src)
    if change == "rename":
        os.rename(src / "weights.bin", src / "weights.old")
    elif change == "delete_empty":
        os.remove(src / "sub" / "empty.txt")
    else:
        (src / "extra.txt").write_bytes(b"")
        os.utime(src / "extra.txt", ns=(10**9, 10**9))
    with pytest.raises(ArtifactIntegrityError, match="artifact 'model'"):
        get_dataitem(art.uri, key="model", artifact=art).local()


def test_hostile_names_are_stored_exactly_and_a_non_utf8_name_is_not_a_crash(tmp_path):
    names = ["a\nb.txt", "-rf", "..x", " lead", "tr ail "]
    src = make_tree(tmp_path / "src", {n: n.encode() for n in names})
    (tmp_path / "src" / os.fsdecode(b"\xff.bin")).write_bytes(b"raw")  # a name that is no UTF-8
    art = ArtifactManager(str(tmp_path / "arts")).log("model", local_path=str(src))
    assert listing(art.uri) == listing(src) and len(listing(src)) == 6
    assert art.hash.endswith(hash_tree(str(src), art.hash.split(":")[0])[0])
    assert listing(get_dataitem(art.uri, key="model", artifact=art).local(verify=True)) == listing(
        src)


def test_a_non_utf8_name_is_refused_for_an_object_store_naming_it(tmp_path):
    from mlflowlet.datastore._dirtree import store_tree

    src = make_tree(tmp_path / "src", {"ok.txt": b"1"})
    (src / os.fsdecode(b"bad\xff.bin")).write_bytes(b"raw")
    with pytest.raises(ArtifactError, match=r"artifact 'model': 'bad\\udcff.bin' in .* is not a "
                                            r"UTF-8 name"):
        store_tree("model", str(src), "s3://bucket/model", None, None, "sha256")


def test_a_file_changed_while_a_directory_uploads_is_recorded_as_stored(tmp_path, s3, monkeypatch):
    # the record's hash and size must be those of the bytes the store got, not of the
    # directory as it is after the upload
    from mlflowlet.datastore.s3 import S3Store

    src = make_tree(tmp_path / "model")
    real, calls = S3Store.upload_hashed, []

    def upload_then_touch(self, url, path, algo="sha256"):
        out = real(self, url, path, algo)
        calls.append(url)
        if url.endswith("weights.bin"):  # the last one: an uploaded file changes afterwards
            (src / "sub dir" / "config ü.json").write_bytes(b'{"a": 2, "b": 3}')
        return out

    monkeypatch.setattr(S3Store, "upload_hashed", upload_then_touch)
    art = ArtifactManager(f"s3://{s3}/runs/r1").log("model", local_path=str(src))
    assert len(calls) == 2
    local = get_dataitem(art.uri, key="model", artifact=art).local(verify=True)
    assert listing(local)["sub dir/config ü.json"] == b'{"a": 1}'
    assert art.hash.endswith(hash_tree(local, art.hash.split(":")[0])[0]) and art.size == 13


def test_a_directory_version_downloads_as_a_folder_and_a_bad_copy_is_removed(tmp_path):
    src = make_tree(tmp_path / "model")
    (src / "empty").mkdir()  # a local version may hold an empty folder: the copy keeps it
    art = ArtifactManager(str(tmp_path / "arts")).log("model", local_path=str(src))
    item = get_dataitem(art.uri, key="model", artifact=art)
    item.download(str(tmp_path / "copy"), verify=True)
    assert listing(tmp_path / "copy") == listing(src) and (tmp_path / "copy" / "empty").is_dir()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_bytes(b"mine")
    with pytest.raises(DataStoreError, match="'model'.*it exists and is not an empty folder"):
        item.download(str(tmp_path / "taken"))
    assert listing(tmp_path / "taken") == {"mine.txt": b"mine"}  # nothing of it replaced
    (tmp_path / "arts" / "model" / "weights.bin").write_bytes(b"W" * 5)  # same size, new time
    with pytest.raises(ArtifactIntegrityError, match="artifact 'model'"):
        item.download(str(tmp_path / "bad"), verify=True)
    assert not (tmp_path / "bad").exists()


@pytest.fixture
def memfs(tmp_path, monkeypatch):
    """fsspec's in-memory store under a bucket of this test's own."""
    fs = pytest.importorskip("fsspec").filesystem("memory")
    monkeypatch.setenv("MLFLOWLET_CACHE_DIR", str(tmp_path / "cache"))
    return fs, f"memory://dirs-{tmp_path.name}"


def test_a_directory_version_in_an_fsspec_store_reads_back_like_one_in_s3(tmp_path, memfs):
    # it was written, but local() and download() could not list its objects
    fs, where = memfs
    src = make_tree(tmp_path / "model dir")
    first = ArtifactManager(f"{where}/runs/r1").log("model", local_path=str(src))
    assert first.format == "dir" and first.uri == f"{where}/runs/r1/model dir"
    item = get_dataitem(first.uri, key="model", artifact=first)
    assert item.listdir() == ["sub dir", "weights.bin"]
    assert listing(item.local(verify=True)) == listing(src)
    item.download(str(tmp_path / "copy"), verify=True)
    assert listing(tmp_path / "copy") == listing(src)
    fs.pipe(f"{first.uri}/weights.bin", b"W" * 5)  # same size: only the hash tells
    with pytest.raises(ArtifactIntegrityError, match="artifact 'model'"):
        get_dataitem(first.uri, key="model", artifact=first).local(verify=True)
    with pytest.raises(ArtifactIntegrityError, match="artifact 'model'"):
        item.download(str(tmp_path / "bad"), verify=True)
    assert not (tmp_path / "bad").exists()


def test_gc_and_copy_handle_every_object_of_a_directory_version_in_an_fsspec_store(
    dbdir, tmp_path, memfs
):
    # the siblings: gc dropped the record and left the objects (no delete); copy of the
    # prefix took it for one file
    from mlflowlet import get_run_db, new_runner, new_task
    from mlflowlet.artifacts import collect_garbage, verify_artifacts
    from mlflowlet.datastore import copy

    fs, where = memfs
    src = make_tree(tmp_path / "model")

    def handler(context):
        context.log_artifact("model", local_path=str(src))

    runs = {
        name: new_runner().run(new_task(name=name, artifact_path=f"{where}/{name}"),
                               handler=handler)
        for name in ("keep", "drop")
    }  # fmt: skip
    kept = runs["keep"].status.artifacts[0]["uri"]
    assert verify_artifacts().problems == [] and verify_artifacts().checked == 2
    done = copy(kept + "/", str(tmp_path / "copied"))
    assert sorted(c["dst"] for c in done) == sorted(
        str(tmp_path / "copied" / rel) for rel in listing(src))
    assert listing(tmp_path / "copied") == listing(src)
    get_run_db().del_runs(name="drop")
    assert len(collect_garbage().files) == 1
    root = fs._strip_protocol(where)
    assert sorted(p[len(root) + 1 :].split("/")[0] for p in fs.find(where)) == ["keep", "keep"]
