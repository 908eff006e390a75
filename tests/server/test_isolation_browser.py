"""Uploaded artifacts cannot read the API with the user's session (real headless Chromium).

Each hostile file runs a synchronous XHR to ``/api/v1/runs`` when a browser would execute it and
stores what it read in ``window.__leak`` (before the page's load event, so no waiting is needed).
A control route serving the same payload without the isolation proves the payload works.
"""

from __future__ import annotations

import httpx
import pytest
from _browser import chromium, login

from mlflowlet.db.sqlite import SQLiteRunDB
from mlflowlet.model import RunObject

pytest.importorskip("fastapi")
TOKEN = "iso-token"
SECRET = "secret-run-name-4711"
PAYLOAD = (
    "try{var x=new XMLHttpRequest();x.open('GET','/api/v1/runs',false);x.send();"
    "window.__leak='READ:'+x.status+':'+x.responseText}catch(e){window.__leak='FAIL:'+e}"
)
PAGE = (
    "<!DOCTYPE html><html><head><title>t</title></head>"
    f"<body><script>{PAYLOAD}</script></body></html>"
)
XHTML = (
    '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title>'
    f"</head><body><script>//<![CDATA[\n{PAYLOAD}\n//]]></script></body></html>"
)
SVG = (
    f'<svg xmlns="http://www.w3.org/2000/svg"><script>//<![CDATA[\n{PAYLOAD}\n//]]></script></svg>'
)
MHTML = (
    "From: <Saved by Blink>\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/related; type="text/html"; boundary="B"\r\n\r\n--B\r\n'
    "Content-Type: text/html\r\nContent-Location: http://example.com/\r\n\r\n"
    f"{PAGE}\r\n--B--\r\n"
)
FILES = {
    "evil.html": PAGE,
    "evil.htm": PAGE,
    "evil.svg": SVG,
    "evil.xhtml": XHTML,
    "evil.xml": XHTML,
    "evil.mhtml": MHTML,
    "notes.txt": "\n  " + PAGE,  # a text file that sniffs as HTML
    "fake.png": PAGE,  # the extension alone never decides
}
ATTACHMENTS = {"evil.xhtml", "evil.xml", "evil.mhtml", "notes.txt", "fake.png"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from fastapi.responses import HTMLResponse

    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.app import create_app

    base = tmp_path_factory.mktemp("iso")
    root = base / "artifacts"
    (root / "p" / "r").mkdir(parents=True)
    arts = []
    for name, text in FILES.items():
        (root / "p" / "r" / name).write_text(text)
        arts.append({"key": name, "kind": "", "uri": str(root / "p" / "r" / name)})
    db = SQLiteRunDB(str(base / "iso.db"))
    run = RunObject()
    run.metadata.uid, run.metadata.name, run.metadata.project = "victim", SECRET, "p"
    run.status.state, run.status.artifacts = "completed", arts
    db.store_run(run.to_dict(), "victim", "p")
    app = create_app(db, token=TOKEN, artifact_root=str(root))

    @app.get("/control-unsafe", include_in_schema=False)
    def control() -> HTMLResponse:  # the payload served the way the old server served it
        unsafe = {"content-security-policy": "default-src * 'unsafe-inline'"}
        return HTMLResponse(PAGE, headers=unsafe)

    with ThreadedServer(app) as server, chromium() as browser:
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(10000)
        login(page, server.url, TOKEN)
        yield server, context
        context.close()


def _leak(frame) -> str:
    return str(frame.evaluate("() => window.__leak || ''"))


def test_the_payload_reads_the_api_when_served_without_isolation(site):
    server, context = site
    page = context.new_page()
    page.goto(server.url + "/control-unsafe")
    leak = _leak(page)
    assert leak.startswith("READ:200:") and SECRET in leak
    page.close()


@pytest.mark.parametrize("name", sorted(FILES))
def test_an_uploaded_file_cannot_read_the_api_when_opened(site, name):
    from playwright.sync_api import Error

    server, context = site
    url = f"{server.url}/api/v1/files/p/r/{name}"
    page = context.new_page()
    downloaded = False
    try:
        with page.expect_download(timeout=5000) if name in ATTACHMENTS else _nothing():
            try:
                page.goto(url)
            except Error as exc:  # a download aborts the navigation
                assert "Download is starting" in str(exc) or "ERR_ABORTED" in str(exc)
            downloaded = name in ATTACHMENTS
        for frame in page.frames:
            assert SECRET not in _leak(frame) and not _leak(frame).startswith("READ:")
    finally:
        page.close()
    assert downloaded == (name in ATTACHMENTS)
    head = httpx.get(url, headers={"authorization": f"Bearer {TOKEN}"})
    assert head.headers["x-content-type-options"] == "nosniff"
    if name in ATTACHMENTS:
        assert head.headers["content-disposition"].startswith("attachment")
        assert head.headers["content-type"] == "application/octet-stream"
    else:
        assert "sandbox" in head.headers["content-security-policy"]
        assert "allow-same-origin" not in head.headers["content-security-policy"]


def test_html_previews_in_the_run_page_cannot_read_the_api(site):
    server, context = site
    page = context.new_page()
    page.goto(server.url + "/runs/victim?project=p")
    frames = [f for f in page.frames if f != page.main_frame]
    assert len(frames) == 2  # evil.html and evil.htm, each in a sandboxed frame
    assert page.locator("iframe[sandbox]").count() == 2
    for frame in frames:
        assert _leak(frame) == ""  # the frame's scripts never ran
    assert _leak(page.main_frame) == ""
    page.close()


def test_ui_pages_send_a_strict_policy(site):
    server, _ = site
    resp = httpx.get(server.url + "/runs/victim?project=p", cookies={"mlflowlet_token": TOKEN})
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert resp.headers["x-content-type-options"] == "nosniff"
    api = httpx.get(server.url + "/api/v1/runs", headers={"authorization": f"Bearer {TOKEN}"})
    assert "frame-ancestors 'none'" in api.headers["content-security-policy"]
    login_page = httpx.get(server.url + "/", headers={"accept": "text/html"})
    assert login_page.status_code == 401
    assert "frame-ancestors 'none'" in login_page.headers["content-security-policy"]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
