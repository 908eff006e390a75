"""The http(s) store against a real ThreadingHTTPServer on 127.0.0.1."""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlflowlet.datastore import DataItem, get_dataitem, get_store
from mlflowlet.datastore.httpstore import HttpStore
from mlflowlet.errors import DataNotFoundError, DataStoreError

BIG = os.urandom(3 * (1 << 20) + 123)  # several 1 MiB chunks and a tail


class _Handler(SimpleHTTPRequestHandler):
    requests: list[tuple[str, str, dict[str, str]]]

    def log_request(self, code="-", size="-"):
        self.requests.append((self.command, self.path, dict(self.headers)))

    def log_message(self, format, *args):  # keep test output quiet
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve ``tmp_path/www`` and record every request; yields (base URL, requests)."""
    monkeypatch.setenv("MLFLOWLET_CACHE_DIR", str(tmp_path / "cache"))
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello.txt").write_bytes(b"hello world")
    (www / "big.bin").write_bytes(BIG)
    (www / "table.csv").write_text("a,b\n1,x\n2,y\n")
    requests: list = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _gets(requests, path):
    return [r for r in requests if r[0] == "GET" and r[1] == path]


def test_http_get_reads_the_file(server):
    base, _ = server
    assert get_dataitem(f"{base}/hello.txt").get() == b"hello world"


def test_http_get_range_slices_when_server_ignores_range(server):
    base, requests = server
    assert get_dataitem(f"{base}/hello.txt").get(size=5, offset=6) == b"world"
    assert _gets(requests, "/hello.txt")[-1][2]["Range"] == "bytes=6-10"


def test_http_404_names_url(server):
    base, _ = server
    url = f"{base}/missing.csv"
    with pytest.raises(DataNotFoundError) as err:
        get_dataitem(url).get()
    assert url in str(err.value)
    with pytest.raises(DataNotFoundError, match=r"input 'train': no such URL"):
        DataItem("train", url).local()


def test_http_connection_refused_names_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.csv"
    with pytest.raises(DataStoreError, match="cannot reach") as err:
        get_dataitem(url).get()
    assert url in str(err.value)
    assert not isinstance(err.value, DataNotFoundError)


def test_http_timeout_is_bounded():
    # A listening socket that never accepts: connect succeeds, no reply ever comes.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/slow"
        start = time.monotonic()
        with pytest.raises(DataStoreError, match="timed out after 0.3 s") as err:
            get_store(url, timeout=0.3).get(url)
        assert time.monotonic() - start < 5
    assert url in str(err.value)


def test_http_default_timeout_is_30s():
    assert get_store("https://example.invalid/x").timeout == 30.0
    assert HttpStore(timeout=2).timeout == 2.0


def test_http_put_is_refused(server, tmp_path):
    base, requests = server
    item = get_dataitem(f"{base}/hello.txt")
    with pytest.raises(DataStoreError, match="read-only"):
        item.put(b"x")
    with pytest.raises(DataStoreError, match="read-only"):
        item.upload(str(tmp_path / "www" / "hello.txt"))
    assert not [r for r in requests if r[0] != "GET"]


def test_http_stat_reports_size_and_mtime(server):
    base, requests = server
    info = get_dataitem(f"{base}/big.bin").stat()
    assert info["size"] == len(BIG)
    assert info["modified"] > 0
    assert requests[-1][0] == "HEAD"


def test_http_download_streams_large_file(server, tmp_path):
    base, _ = server
    target = tmp_path / "out" / "big.bin"
    get_dataitem(f"{base}/big.bin").download(str(target))
    assert target.read_bytes() == BIG
    assert os.listdir(target.parent) == ["big.bin"]


def test_http_open_streams(server):
    base, _ = server
    with get_dataitem(f"{base}/big.bin").open() as f:
        first = f.read(1 << 20)
        rest = f.read()
    assert first + rest == BIG


def test_local_cached_once(server, tmp_path):
    base, requests = server
    url = f"{base}/big.bin"
    first = get_dataitem(url).local()
    again = get_dataitem(url).local()  # a new item finds the cached copy
    item = get_dataitem(url)
    assert item.local() == item.local() == first == again
    assert first.startswith(str(tmp_path / "cache"))
    assert first.endswith("big.bin")
    assert open(first, "rb").read() == BIG
    assert len(_gets(requests, "/big.bin")) == 1


def test_as_df_over_http(server):
    pytest.importorskip("pandas")
    base, _ = server
    df = get_dataitem(f"{base}/table.csv").as_df()
    assert df.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}


def test_http_token_secret_is_sent_as_bearer(server):
    base, requests = server
    get_dataitem(f"{base}/hello.txt", secrets={"HTTP_TOKEN": "s3cr3t"}).get()
    assert requests[-1][2]["Authorization"] == "Bearer s3cr3t"
