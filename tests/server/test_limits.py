"""Bounded request shapes answered with a 4xx naming the limit; paged lists; strict fields."""

from __future__ import annotations

import functools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlflowlet.db.sqlite import SQLiteRunDB
from mlflowlet.model import RunObject

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
TOKEN = "limit-token"
H = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server(tmp_path):
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.app import create_app

    db = SQLiteRunDB(str(tmp_path / "l.db"))
    app = create_app(db, token=TOKEN, artifact_root=str(tmp_path), max_body=64 * 1024, ui=False)
    with ThreadedServer(app) as srv:
        srv.db = db
        yield srv


def _run(uid: str, **spec) -> dict:
    run = RunObject()
    run.metadata.uid, run.metadata.name, run.metadata.project = uid, "r", "p"
    run.status.start_time = f"2024-01-01T00:00:{int(uid[1:]) % 60:02d}.{uid[1:]:0>6}+00:00"
    data = run.to_dict()
    data["spec"].update(spec)
    return data


def test_params_nested_900_deep_are_400_naming_the_limit(server):
    deep = _run("r1", params={"p": json.loads("[" * 900 + "]" * 900)})
    resp = httpx.put(server.url + "/api/v1/runs/r1", content=json.dumps(deep),
                     headers={**H, "content-type": "application/json"})
    assert resp.status_code == 400
    assert "64 levels" in resp.json()["detail"]
    assert server.db.list_runs() == []
    ok = _run("r2", params={"p": json.loads("[" * 50 + "]" * 50)})
    assert httpx.put(server.url + "/api/v1/runs/r2", json=ok, headers=H).status_code == 204


def test_5000_label_filters_are_a_4xx_naming_the_limit(server):
    query = "&".join(f"label=k{i % 100}" for i in range(5000))
    resp = httpx.get(server.url + "/api/v1/runs?" + query, headers=H)
    assert resp.status_code == 422
    assert "at most 100 items" in json.dumps(resp.json())
    query = "&".join(f"label=k{i}" for i in range(100))
    assert httpx.get(server.url + "/api/v1/runs?" + query, headers=H).status_code == 200


def test_an_oversized_chunked_json_body_is_413_not_a_parse_error(server):
    def chunks():
        yield b'{"metadata": {"uid": "big"}, "spec": {"params": {"pad": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}}}'

    resp = httpx.put(server.url + "/api/v1/runs/big", content=chunks(),
                     headers={**H, "content-type": "application/json"})
    assert resp.status_code == 413 and "65536 bytes" in resp.json()["detail"]
    assert server.db.list_runs() == []


def test_list_runs_pages_by_100_and_the_client_reads_every_page(server):
    from mlflowlet.db.http import HTTPRunDB

    server.db.store_runs([_run(f"r{i:04d}") for i in range(250)])
    first = httpx.get(server.url + "/api/v1/runs", headers=H).json()
    assert len(first["runs"]) == 100 and first["next_offset"] == 100
    last = httpx.get(server.url + "/api/v1/runs", params={"offset": 200}, headers=H).json()
    assert len(last["runs"]) == 50 and last["next_offset"] is None
    pages = [r["metadata"]["uid"] for o in (0, 100, 200) for r in httpx.get(
        server.url + "/api/v1/runs", params={"offset": o}, headers=H).json()["runs"]]
    assert len(pages) == len(set(pages)) == 250
    assert pages == [r["metadata"]["uid"] for r in server.db.list_runs()]
    client = HTTPRunDB(server.url, token=TOKEN)
    import mlflowlet.db.http as http_mod

    http_mod.PAGE = 64  # several pages per listing
    try:
        assert [r["metadata"]["uid"] for r in client.list_runs()] == pages
        assert len(client.list_runs(last=130)) == 130
        assert [r["metadata"]["uid"] for r in client.list_runs(offset=240)] == pages[240:]
    finally:
        http_mod.PAGE = 10_000
    capped = httpx.get(server.url + "/api/v1/runs", params={"last": 30, "limit": 20,
                                                              "offset": 20}, headers=H).json()
    assert len(capped["runs"]) == 10 and capped["next_offset"] is None


def test_list_artifacts_pages_too(server):
    from mlflowlet.db.http import HTTPRunDB

    for i in range(130):
        server.db.store_artifact(f"a{i:03d}", {"key": f"a{i:03d}", "hash": f"h{i}"}, project="p")
    page = httpx.get(server.url + "/api/v1/artifacts", headers=H).json()
    assert len(page["artifacts"]) == 100 and page["next_offset"] == 100
    rest = httpx.get(server.url + "/api/v1/artifacts", params={"offset": 100}, headers=H).json()
    assert len(rest["artifacts"]) == 30 and rest["next_offset"] is None
    keys = {a["key"] for a in HTTPRunDB(server.url, token=TOKEN).list_artifacts(project="p")}
    assert keys == {f"a{i:03d}" for i in range(130)}


@pytest.mark.parametrize("body, code", [
    ({"metadata": {"iteration": "3"}}, 422),
    ({"metadata": {"iteration": True}}, 422),
    ({"metadata": {"iteration": 3.5}}, 422),
    ({"metadata": {"name": 5}}, 422),
    ({"status": {"state": "finished"}}, 422),
    ({"metadata": {"iteration": 3.0}}, 204),
])
def test_run_fields_are_strictly_typed(server, body, code):
    resp = httpx.put(server.url + "/api/v1/runs/s1", json=body, headers=H)
    assert resp.status_code == code, resp.text


def test_update_through_a_non_object_is_409_and_delete_everything_is_409(server):
    server.db.store_run(_run("r0001"), "r0001", "p")
    resp = httpx.patch(server.url + "/api/v1/runs/r0001", params={"project": "p"},
                       json={"metadata.name.first": "x"}, headers=H)
    assert resp.status_code == 409 and "'name' is not an object" in resp.json()["detail"]
    resp = httpx.patch(server.url + "/api/v1/runs/r0001", json={"": 1}, headers=H)
    assert resp.status_code == 422
    resp = httpx.delete(server.url + "/api/v1/runs", headers=H)
    assert resp.status_code == 409 and "needs a filter" in resp.json()["detail"]
    assert len(server.db.list_runs()) == 1


def test_a_wrong_method_lists_every_method_of_the_path(server):
    resp = httpx.request("OPTIONS", server.url + "/api/v1/runs/x", headers=H)
    assert resp.status_code == 405
    assert resp.headers.get_list("allow") == ["DELETE, GET, PATCH, PUT"]


def test_lineage_pages_too(server):
    from mlflowlet.db.http import HTTPRunDB

    server.db.store_lineage([{"producer_uid": "a", "consumer_uid": f"c{i}", "artifact_key": "k"}
                             for i in range(150)])
    page = httpx.get(server.url + "/api/v1/lineage", params={"run_uid": "a"}, headers=H).json()
    assert len(page["edges"]) == 100 and page["next_offset"] == 100
    edges = HTTPRunDB(server.url, token=TOKEN).list_lineage(run_uid="a")
    assert [e["consumer_uid"] for e in edges] == [f"c{i}" for i in range(150)]


@functools.lru_cache
def _adapter(pattern: str):
    from typing import Annotated

    from pydantic import Field, TypeAdapter

    return TypeAdapter(Annotated[str, Field(pattern=pattern)])


def _rust_match(pattern: str, text: str) -> bool:
    """Whether the server's own validator (pydantic's Rust regex engine) accepts ``text``."""
    from pydantic import ValidationError

    try:
        _adapter(pattern).validate_python(text)
        return True
    except ValidationError:
        return False


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(st.text(alphabet=st.sampled_from(list("ab.:/\\ \t\n\x80\x85\xa0é1C\u2003")), max_size=6)
       | st.text(max_size=8))
def test_the_documented_artifact_key_pattern_is_exactly_validate_key(key):
    import re

    from mlflowlet.artifacts._keys import validate_key
    from mlflowlet.errors import MlflowletError
    from mlflowlet.server._schemas import ARTIFACT_KEY

    try:
        validate_key(key)
        valid = True
    except MlflowletError:
        valid = False
    assert bool(re.fullmatch(ARTIFACT_KEY[1:-1], key)) == valid == _rust_match(ARTIFACT_KEY, key)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(st.text(alphabet=st.sampled_from(list("ab=!~ \t\n\x85\xa0\x1c")), max_size=7)
       | st.text(max_size=8))
def test_the_documented_label_filter_pattern_is_exactly_the_grammar(item):
    import re

    from mlflowlet.db.base import parse_label_filters
    from mlflowlet.errors import MlflowletError
    from mlflowlet.server._schemas import LABEL_FILTER

    try:
        parse_label_filters([item])
        valid = True
    except MlflowletError:
        valid = False
    assert bool(re.fullmatch(LABEL_FILTER[1:-1], item)) == valid == _rust_match(LABEL_FILTER, item)


def test_an_artifact_key_over_the_byte_limit_is_a_400_naming_it_and_nothing_is_stored(server):
    from mlflowlet.artifacts._keys import MAX_NAME_BYTES
    from mlflowlet.db.http import HTTPRunDB

    client = HTTPRunDB(server.url, token=TOKEN)
    fits = "é" * (MAX_NAME_BYTES // 2)  # exactly the limit in UTF-8 bytes
    client.store_artifact(fits, {"key": fits, "hash": "h"}, project="p")
    assert server.db.read_artifact(fits, project="p")["hash"] == "h"
    over = "é" * (MAX_NAME_BYTES // 2 + 1)  # within the schema's characters, over in bytes
    answer = httpx.put(f"{server.url}/api/v1/artifacts/{over}", params={"project": "p"},
                       json={"key": over, "hash": "h"}, headers=H)
    assert answer.status_code == 400 and str(MAX_NAME_BYTES) in answer.json()["detail"]
    too_many = "a" * (MAX_NAME_BYTES + 1)  # over in characters: the schema says so (422)
    answer = httpx.put(f"{server.url}/api/v1/artifacts/{too_many}", params={"project": "p"},
                       json={"key": too_many, "hash": "h"}, headers=H)
    assert answer.status_code == 422
    assert [a["key"] for a in server.db.list_artifacts(project="p")] == [fits]
