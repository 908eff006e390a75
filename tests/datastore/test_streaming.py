"""Streaming with failures: http(s) retries with backoff and Range resume; hashing while copying.

The HTTP server is a real ThreadingHTTPServer on 127.0.0.1 whose paths misbehave on purpose:
5xx answers, bodies cut off mid-way, servers that ignore ``Range``.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlflowlet.datastore import copy, get_dataitem, get_store
from mlflowlet.datastore._streams import HashingReader
from mlflowlet.errors import DataNotFoundError, DataStoreError

DATA = os.urandom(3 * (1 << 20) + 333)
CUT = 1 << 20  # where a cut-off body stops


class _Flaky(BaseHTTPRequestHandler):
    """Each path misbehaves differently; ``plan`` counts requests per path."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict[str, str]]]
    plan: dict[str, int]

    def log_message(self, format, *args):
        pass

    def do_HEAD(self):
        self._answer(head=True)

    def do_GET(self):
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        self.seen.append((self.command, self.path, dict(self.headers)))
        n = self.plan[self.path] = self.plan.get(self.path, 0) + 1
        path = self.path
        if path == "/missing":
            return self._status(404)
        if path == "/always-503" or (path == "/503-twice" and n <= 2):
            return self._status(503)
        ranged = path in ("/cut-once", "/cut-every-time", "/503-twice", "/empty-body")
        start = 0
        if ranged and self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if self.headers.get("If-Range") not in (None, '"v1"'):
                start = 0
        body = DATA[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(DATA) - 1}/{len(DATA)}")
        self.end_headers()
        if head:
            return None
        cut = path == "/cut-every-time" or (n == 1 and path in ("/cut-once", "/cut-norange"))
        if cut or path == "/empty-body":
            self.wfile.write(body[: 0 if path == "/empty-body" else CUT])
            self.wfile.flush()
            self.close_connection = True
            return None
        self.wfile.write(body)
        return None

    def _status(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def flaky():
    """A misbehaving HTTP server; yields (base URL, requests seen)."""
    seen: list = []
    handler = type("Handler", (_Flaky,), {"seen": seen, "plan": {}})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _gets(seen, path):
    return [headers for method, p, headers in seen if method == "GET" and p == path]


def test_5xx_is_retried_with_backoff_then_succeeds(flaky):
    base, seen = flaky
    store = get_store(base, backoff=0.01)
    assert store.get(f"{base}/503-twice") == DATA
    assert len(_gets(seen, "/503-twice")) == 3


def test_retries_are_bounded_and_named(flaky):
    base, seen = flaky
    store = get_store(base, retries=2, backoff=0.01)
    with pytest.raises(DataStoreError, match=r"HTTP 503 .*\(after 3 attempts\)"):
        store.get(f"{base}/always-503")
    assert len(_gets(seen, "/always-503")) == 3


def test_404_is_not_retried_and_names_the_url(flaky):
    base, seen = flaky
    with pytest.raises(DataNotFoundError, match=f"no such URL '{base}/missing'"):
        get_store(base, backoff=0.01).get(f"{base}/missing")
    assert len(_gets(seen, "/missing")) == 1


def test_download_cut_short_resumes_with_range(flaky, tmp_path):
    base, seen = flaky
    target = tmp_path / "out" / "data.bin"
    get_dataitem(f"{base}/cut-once").download(str(target))
    assert target.read_bytes() == DATA
    first, second = _gets(seen, "/cut-once")
    assert "Range" not in first
    assert second["Range"] == f"bytes={CUT}-" and second["If-Range"] == '"v1"'
    assert os.listdir(target.parent) == ["data.bin"]


def test_download_restarts_when_the_server_ignores_range(flaky, tmp_path):
    base, seen = flaky
    target = tmp_path / "data.bin"
    get_store(base, backoff=0.01).download(f"{base}/cut-norange", str(target))
    assert target.read_bytes() == DATA
    assert len(_gets(seen, "/cut-norange")) == 2


def test_download_cut_every_time_still_completes_while_it_makes_progress(flaky, tmp_path):
    base, seen = flaky
    target = tmp_path / "data.bin"
    get_store(base, retries=1, backoff=0.01).download(f"{base}/cut-every-time", str(target))
    assert target.read_bytes() == DATA
    ranges = [h.get("Range") for h in _gets(seen, "/cut-every-time")]
    assert ranges == [None, f"bytes={CUT}-", f"bytes={2 * CUT}-", f"bytes={3 * CUT}-"]


def test_download_without_progress_fails_after_bounded_tries_and_leaves_nothing(
    flaky, tmp_path
):
    base, seen = flaky
    target = tmp_path / "out" / "data.bin"
    start = time.monotonic()
    with pytest.raises(DataStoreError, match=r"kept failing after 3 attempts without progress"):
        get_store(base, retries=2, backoff=0.01).download(f"{base}/empty-body", str(target))
    assert time.monotonic() - start < 10
    assert len(_gets(seen, "/empty-body")) == 3
    assert os.listdir(target.parent) == []


def test_local_cache_goes_through_the_resuming_download(flaky, tmp_path):
    base, _ = flaky
    path = get_dataitem(f"{base}/cut-once").local()
    assert open(path, "rb").read() == DATA


def test_hashing_reader_hashes_each_byte_once_in_order(tmp_path):
    src = tmp_path / "f.bin"
    src.write_bytes(DATA)
    with open(src, "rb") as f:
        reader = HashingReader(f)
        assert not reader.seekable()
        parts = [reader.read(1000), reader.read(1 << 20)]
        buf = bytearray(1 << 21)
        n = reader.readinto(buf)
        parts += [bytes(buf[:n]), reader.read()]
    assert b"".join(parts) == DATA
    assert (reader.sha256, reader.size) == (hashlib.sha256(DATA).hexdigest(), len(DATA))


def test_copy_between_local_paths_hashes_while_copying(tmp_path):
    src = tmp_path / "a" / "f.bin"
    src.parent.mkdir()
    src.write_bytes(DATA)
    (out,) = copy(str(src), str(tmp_path / "b") + "/")
    assert out["dst"] == str(tmp_path / "b" / "f.bin")
    assert (out["hash"], out["size"]) == (hashlib.sha256(DATA).hexdigest(), len(DATA))
    with pytest.raises(DataNotFoundError):
        copy(str(tmp_path / "nope.bin"), str(tmp_path / "c"))


def test_copy_http_to_memory_streams_through(flaky):
    pytest.importorskip("fsspec")
    base, _ = flaky
    (out,) = copy(f"{base}/503-twice", "memory://mlflowlet-copy/data.bin")
    assert out["hash"] == hashlib.sha256(DATA).hexdigest()
    assert get_dataitem("memory://mlflowlet-copy/data.bin").get() == DATA
