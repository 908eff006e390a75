"""The s3:// store against a real S3 endpoint (SeaweedFS on 127.0.0.1, credentials enforced)."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import sys
import time
from contextlib import contextmanager

import pytest

from mlflowlet.datastore import copy, get_dataitem, get_store
from mlflowlet.datastore.s3 import S3Store, parse_s3_url, resolve_s3_config
from mlflowlet.errors import ConfigError, DataNotFoundError, DataStoreError, PathTraversalError

MiB = 1 << 20


@contextmanager
def requests_seen(store: S3Store):
    """Record the name of every HTTP request the store's client sends (retries included)."""
    seen: list[str] = []

    def hook(request, **kwargs):
        seen.append(f"{request.method} {request.url}")

    events = store.client.meta.events
    events.register("before-send.s3", hook)
    try:
        yield seen
    finally:
        events.unregister("before-send.s3", hook)


def _blob(size: int, seed: int = 1) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 4096  # 128 KiB, not compressible
    return (block * (size // len(block) + 1))[:size]


# round trips ----------------------------------------------------------------------------------
def test_dataitem_put_get_stat_listdir_open(s3_bucket, s3_secrets):
    item = get_dataitem(f"s3://{s3_bucket}/dir/a.txt", secrets=s3_secrets)
    item.put("hello world")
    assert item.get() == b"hello world"
    assert item.get(size=5, offset=6) == b"world"
    info = item.stat()
    assert info["size"] == 11 and info["modified"] > 0
    assert info["etag"] == hashlib.md5(b"hello world").hexdigest()
    get_dataitem(f"s3://{s3_bucket}/dir/sub/b.txt", secrets=s3_secrets).put(b"b")
    assert get_dataitem(f"s3://{s3_bucket}/dir", secrets=s3_secrets).listdir() == ["a.txt", "sub"]
    assert get_dataitem(f"s3://{s3_bucket}", secrets=s3_secrets).listdir() == ["dir"]
    with item.open() as f:
        f.seek(6)
        assert f.read() == b"world"
        f.seek(0)
        assert f.read(5) == b"hello"


def test_multipart_upload_and_ranged_download_of_file_larger_than_part_size(
    s3_bucket, s3_secrets, tmp_path
):
    data = _blob(12 * MiB + 12345)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    store = S3Store(s3_secrets, part_size=5 * MiB, concurrency=3)
    url = f"s3://{s3_bucket}/big.bin"
    with requests_seen(store) as seen:
        digest, size = store.upload_hashed(url, str(src))
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert sum("uploadId=" in r and "partNumber=" in r for r in seen) == 3  # 5 + 5 + 2.01 MiB
    assert store.stat(url)["etag"].endswith("-3")  # S3's multipart ETag: <md5 of md5s>-<parts>
    out = tmp_path / "out" / "big.bin"
    with requests_seen(store) as seen:
        store.download(url, str(out))
    assert out.read_bytes() == data
    assert sum(r.startswith("GET") for r in seen) == 3  # three ranged GETs, in parallel
    assert os.listdir(out.parent) == ["big.bin"]  # no temporary file left


def test_streaming_writer_sends_parts_and_reader_seeks(s3_bucket, s3_secrets):
    data = _blob(11 * MiB + 7, seed=2)
    store = S3Store(s3_secrets, part_size=5 * MiB)
    url = f"s3://{s3_bucket}/stream.bin"
    with store.open(url, "wb") as w:
        for i in range(0, len(data), 3 * MiB):
            w.write(data[i : i + 3 * MiB])
    assert (w.sha256, w.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert store.stat(url)["etag"].endswith("-3")
    with store.open(url) as r:
        r.seek(10 * MiB)
        assert r.read(100) == data[10 * MiB : 10 * MiB + 100]
        r.seek(-7, io.SEEK_END)
        assert r.read() == data[-7:]
        r.seek(0)
        assert hashlib.sha256(r.read()).digest() == hashlib.sha256(data).digest()


class _DropsAfter:
    """A response body whose connection resets after ``limit`` bytes."""

    def __init__(self, body, limit):
        self.body, self.left = body, limit

    def read(self, n=-1):
        if self.left <= 0:
            raise ConnectionResetError("connection reset by peer")
        data = self.body.read(min(n, self.left))
        self.left -= len(data)
        return data

    def close(self):
        self.body.close()


def test_reader_resumes_at_the_offset_where_the_connection_dropped(
    s3_bucket, s3_secrets, monkeypatch
):
    data = _blob(3 * MiB + 5, seed=3)
    store = S3Store(s3_secrets)
    url = f"s3://{s3_bucket}/drop.bin"
    store.put(url, data)
    real, ranges = store.client.get_object, []

    def get_object(**kwargs):
        ranges.append(kwargs["Range"])
        resp = real(**kwargs)
        if len(ranges) == 1:
            resp["Body"] = _DropsAfter(resp["Body"], MiB)
        return resp

    monkeypatch.setattr(store.client, "get_object", get_object)
    with store.open(url) as f:
        assert f.read() == data
    assert ranges == ["bytes=0-", f"bytes={MiB}-"]


def test_writer_failing_inside_with_publishes_nothing(s3_bucket, s3_secrets):
    store = S3Store(s3_secrets, part_size=5 * MiB)
    url = f"s3://{s3_bucket}/half.bin"
    with pytest.raises(RuntimeError, match="boom"):
        with store.open(url, "wb") as w:
            w.write(_blob(6 * MiB))  # one part already sent
            raise RuntimeError("boom")
    with pytest.raises(DataNotFoundError):
        store.stat(url)
    assert not store.client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")


def test_upload_download_through_dataitem_and_local_cache(s3_bucket, s3_secrets, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,x\n")
    url = f"s3://{s3_bucket}/data/in.csv"
    get_dataitem(url, secrets=s3_secrets).upload(str(src))
    store = get_store(url, s3_secrets)
    with requests_seen(store) as seen:
        first = get_dataitem(url, secrets=s3_secrets).local()
        again = get_dataitem(url, secrets=s3_secrets).local()  # a new item: HEAD, no GET
    assert first == again and first.startswith(str(tmp_path / "cache"))
    assert open(first).read() == "a,b\n1,x\n"
    assert [r.split()[0] for r in seen] == ["HEAD", "GET", "HEAD"]  # stat, download, stat
    get_dataitem(url, secrets=s3_secrets).put("a,b\n2,y\n")  # a new version: new ETag
    newer = get_dataitem(url, secrets=s3_secrets).local()
    assert newer != first and open(newer).read() == "a,b\n2,y\n"


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet", "json", "jsonl"])
def test_as_df_streams_from_s3_without_a_local_copy(s3_bucket, s3_secrets, tmp_path, fmt):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    path = tmp_path / f"t.{fmt}"
    if fmt.startswith("csv"):
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path)
    else:
        df.to_json(path, orient="records", lines=fmt == "jsonl")
    url = f"s3://{s3_bucket}/t.{fmt}"
    get_dataitem(url, secrets=s3_secrets).upload(str(path))
    got = get_dataitem(url, secrets=s3_secrets).as_df()
    assert got.to_dict("list") == df.to_dict("list")
    assert not (tmp_path / "cache").exists()  # streamed, never downloaded whole


def test_copy_local_dir_to_s3_prefix_and_back(s3_bucket, s3_secrets, tmp_path):
    run = tmp_path / "artifacts" / "run1"
    (run / "plots").mkdir(parents=True)
    (run / "model.bin").write_bytes(_blob(6 * MiB))
    (run / "plots" / "roc.html").write_text("<b>roc</b>")
    copied = copy(str(run), f"s3://{s3_bucket}/runs/run1/", secrets=s3_secrets)
    assert [c["dst"] for c in copied] == [
        f"s3://{s3_bucket}/runs/run1/model.bin", f"s3://{s3_bucket}/runs/run1/plots/roc.html",
    ]  # fmt: skip
    assert copied[0]["hash"] == hashlib.sha256((run / "model.bin").read_bytes()).hexdigest()
    back = copy(f"s3://{s3_bucket}/runs/run1/", str(tmp_path / "back"), secrets=s3_secrets)
    assert [c["hash"] for c in back] == [c["hash"] for c in copied]
    assert (tmp_path / "back" / "plots" / "roc.html").read_text() == "<b>roc</b>"
    same = copy(f"s3://{s3_bucket}/runs/run1/model.bin", f"s3://{s3_bucket}/copy/", s3_secrets)
    assert same[0]["dst"] == f"s3://{s3_bucket}/copy/model.bin"  # server-side: no bytes here
    assert get_store("s3://x/y", s3_secrets).stat(same[0]["dst"])["size"] == 6 * MiB


# credentials ----------------------------------------------------------------------------------
def test_run_secrets_win_over_environment(s3_bucket, s3_secrets, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-wrong")
    store = get_store("s3://x/y", s3_secrets)
    assert store.config.source == "the run's secrets"
    store.put(f"s3://{s3_bucket}/k", b"v")
    assert store.get(f"s3://{s3_bucket}/k") == b"v"


def test_environment_is_used_without_secrets(s3_bucket, seaweedfs, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweedfs.endpoint)
    store = get_store(f"s3://{s3_bucket}/k")
    assert store.config.source == "the environment"
    assert store.config.endpoint_url == seaweedfs.endpoint
    store.put(f"s3://{s3_bucket}/k", b"from env")
    assert get_dataitem(f"s3://{s3_bucket}/k").get() == b"from env"


def test_boto3_default_chain_reads_a_profile(s3_bucket, seaweedfs, monkeypatch, tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[default]\naws_access_key_id = {seaweedfs.access_key}\n"
        f"aws_secret_access_key = {seaweedfs.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    store = get_store("s3://x/y", {"S3_ENDPOINT_URL": seaweedfs.endpoint})
    assert store.config.source == "boto3's default chain" and store.config.access_key is None
    store.put(f"s3://{s3_bucket}/p", b"profile")
    assert store.get(f"s3://{s3_bucket}/p") == b"profile"


def test_without_boto3_the_error_names_the_extra(monkeypatch):
    from mlflowlet.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "boto3", None)
    store = get_store("s3://b/k", {"AWS_ACCESS_KEY_ID": "k-nob", "AWS_SECRET_ACCESS_KEY": "s"})
    with pytest.raises(MissingDependencyError, match=r"pip install 'mlflowlet\[s3\]'"):
        store.get("s3://b/k")


def test_half_a_key_pair_is_refused():
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID is set in the run's secrets but"):
        resolve_s3_config({"AWS_ACCESS_KEY_ID": "k"}, environ={})
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY is set in the environment but"):
        resolve_s3_config(None, environ={"AWS_SECRET_ACCESS_KEY": "s"})


def test_wrong_credentials_fail_once_with_a_clear_error(s3_bucket, s3_secrets):
    good = get_store("s3://x/y", s3_secrets)
    good.put(f"s3://{s3_bucket}/k", b"v")
    bad = get_store("s3://x/y", {**s3_secrets, "AWS_SECRET_ACCESS_KEY": "not-the-secret-9f3"})
    for op in (lambda: bad.get(f"s3://{s3_bucket}/k"), lambda: bad.stat(f"s3://{s3_bucket}/k")):
        with requests_seen(bad) as seen, pytest.raises(DataStoreError) as err:
            op()
        assert len(seen) == 1  # access errors are never retried
        message = str(err.value)
        assert "S3 refused" in message and f"s3://{s3_bucket}/k" in message
        assert "AWS_SECRET_ACCESS_KEY" in message and "the run's secrets" in message
        assert "not-the-secret-9f3" not in message
        assert not isinstance(err.value, DataNotFoundError)


def test_missing_bucket_is_named(seaweedfs, s3_secrets, tmp_path):
    store = get_store("s3://x/y", s3_secrets)
    url = "s3://no-such-bucket-7a1/k.txt"
    src = tmp_path / "f.txt"
    src.write_text("x")
    for op in (lambda: store.get(url), lambda: store.stat(url),
               lambda: store.download(url, str(tmp_path / "o")),
               lambda: store.upload(url, str(src)), lambda: store.listdir(url)):  # fmt: skip
        with pytest.raises(DataNotFoundError, match="no such bucket 'no-such-bucket-7a1'"):
            op()
    assert not (tmp_path / "o").exists()


def test_missing_key_is_named(s3_bucket, s3_secrets, tmp_path):
    url = f"s3://{s3_bucket}/nope.csv"
    store = get_store(url, s3_secrets)
    for op in (lambda: store.get(url), lambda: store.stat(url), lambda: store.open(url),
               lambda: store.download(url, str(tmp_path / "o"))):  # fmt: skip
        with pytest.raises(DataNotFoundError, match=f"no such object '{url}'"):
            op()
    with pytest.raises(DataNotFoundError, match=f"input 'train': no such object '{url}'"):
        get_dataitem(url, key="train", secrets=s3_secrets).local()
    with pytest.raises(DataNotFoundError, match="input 'train'"):
        get_dataitem(url, key="train", secrets=s3_secrets).as_df()


def test_endpoint_down_fails_within_bounded_time(s3_secrets, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = S3Store({**s3_secrets, "S3_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
    src = tmp_path / "f.txt"
    src.write_text("x")
    for op in (lambda: store.get("s3://b-down/k"), lambda: store.upload("s3://b-down/k", str(src)),
               lambda: store.download("s3://b-down/k", str(tmp_path / "o"))):  # fmt: skip
        start = time.monotonic()
        with requests_seen(store) as seen, pytest.raises(DataStoreError) as err:
            op()
        assert time.monotonic() - start < 15
        assert len(seen) <= store.max_attempts  # bounded retries, with backoff
        assert f"cannot reach the S3 endpoint http://127.0.0.1:{port}" in str(err.value)


# bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "match"),
    [("s3://", "no bucket"), ("s3:///key.txt", "no bucket"), ("s3://bucket", "empty key"),
     ("s3://bucket/", "empty key"), ("s3://bucket//", "empty key"),
     ("s3://bu cket/k", "not a bucket name")],
)  # fmt: skip
def test_malformed_s3_urls_are_refused(url, match):
    with pytest.raises(ConfigError, match=match):
        parse_s3_url(url)


@pytest.mark.parametrize("key", ["../x", "a/../../x", "a/./b", "a/.."])
def test_dotdot_in_a_target_key_is_refused(s3_secrets, tmp_path, key):
    store = get_store("s3://x/y", s3_secrets)
    src = tmp_path / "f.txt"
    src.write_text("x")
    with requests_seen(store) as seen:
        for op in (lambda: store.put(f"s3://b/{key}", b"x"),
                   lambda: store.upload(f"s3://b/{key}", str(src)),
                   lambda: store.get(f"s3://b/{key}")):  # fmt: skip
            with pytest.raises(PathTraversalError):
                op()
    assert seen == []


@pytest.mark.parametrize(
    "url",
    ["s3://AKIAEXAMPLE:wJalrXUtnFEMI/K7MDENG@bucket/k.csv", "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/k",
     "s3://AKIAEXAMPLE@bucket/k", "https://user:wJalrXUtnFEMI@example.com/k"],
)  # fmt: skip
def test_credentials_in_a_url_are_refused_and_never_echoed(url, caplog):
    with pytest.raises(ConfigError, match="credentials in it") as err:
        get_dataitem(url, key="data")
    assert "wJalrXUtnFEMI" not in str(err.value) and "AKIAEXAMPLE" not in str(err.value)
    if url.startswith("s3"):
        with pytest.raises(ConfigError, match="credentials in it") as err:
            parse_s3_url(url)
        assert "wJalrXUtnFEMI" not in str(err.value)
    assert "wJalrXUtnFEMI" not in caplog.text


def test_credentials_in_an_input_url_stop_the_run_before_it_is_stored(dbdir):
    from mlflowlet import get_run_db, new_runner

    def handler(context, data=None):
        return 1

    with pytest.raises(ConfigError, match="input 'data': refused"):
        new_runner().run(handler=handler, inputs={"data": "s3://AKIAX:wJalrXUtnFEMI@b/k.csv"})
    with pytest.raises(ConfigError, match="artifact_path: refused"):
        new_runner().run(handler=handler, artifact_path="s3://AKIAX:wJalrXUtnFEMI@b/runs")
    assert len(get_run_db(str(dbdir)).connect().list_runs("")) == 0
    for path in dbdir.rglob("*"):
        if path.is_file():
            assert b"wJalrXUtnFEMI" not in path.read_bytes()


def test_malformed_secrets_file_names_the_line_not_the_value(tmp_path):
    from mlflowlet.errors import SecretsError
    from mlflowlet.secrets import SecretsStore

    path = tmp_path / "secrets.txt"
    path.write_text("# creds\nAWS_ACCESS_KEY_ID=AKIAX\nwJalrXUtnFEMI-no-equals-sign\n")
    with pytest.raises(SecretsError, match="line 3 is not KEY=VALUE") as err:
        SecretsStore().add_source("file", str(path))
    assert "wJalrXUtnFEMI" not in str(err.value)
