"""A cache hit's record, exactly: its original's record with only the documented fields changed.

Varied steps (results, artifacts, labels, a NaN result, a sweep, a step that failed before it
was cached) run once, then again with caching on. Every hit read back (SQLite and the HTTP
server over the same file) must equal its original read back with only its uid, name,
iteration, pipeline labels and ``cached_from``, ``cached_at``, parent/pipeline uids, params,
inputs, state, error and times changed, and its stored text must be what ``dumps`` writes.
"""

from __future__ import annotations

import math

import pytest

from mlflowlet import DataItem, get_run_db, pipeline, step
from mlflowlet.db._json import dumps
from mlflowlet.pipelines import cache

FAIL_ONCE: list[str] = []


@step(outputs=["data"], labels={"team": "vision"})
def made(context, rows: int = 3):
    context.set_label("stage", "prep")
    context.log_artifact("data", body=",".join(map(str, range(rows))), format="txt")
    context.log_result("rows", rows)


@step
def summed(context, data: DataItem) -> dict:
    return {"total": sum(int(x) for x in data.get().decode().split(",")), "ratio": 0.5}


@step
def odd(context, x: int = 0) -> float:
    context.log_result("weird", {"$float": "not a tag"})
    return math.nan if x else math.inf


@step
def flaky(context, x: int = 0) -> int:
    if not FAIL_ONCE:
        FAIL_ONCE.append("failed")
        raise RuntimeError("the first attempt fails")
    return x + 1


@step
def scored(lr: float = 0.1) -> dict:
    return {"acc": lr}


@pipeline(name="varied")
def varied(rows: int = 3):
    summed(data=made(rows=rows).outputs["data"])
    odd(x=rows)
    flaky(x=rows)
    scored.with_hyper_params({"lr": [0.1, 0.3]}, selector="max.acc")()


def _expected_hit(original: dict, hit: dict, node: str, pipe_uid: str) -> dict:
    """Return ``original`` with only what a hit may change, taken from ``hit`` where it must."""
    meta, spec, status = original["metadata"], original["spec"], original["status"]
    labels = dict(meta["labels"])
    labels.update(
        pipeline="varied", pipeline_uid=pipe_uid, step=node, cache_key=labels["cache_key"]
    )
    labels[cache.CACHED_FROM] = meta["labels"].get(cache.CACHED_FROM) or meta["uid"]
    annotations = {**meta["annotations"], cache.CACHED_AT: cache.computed_at(original)}
    stamp = hit["status"]["start_time"]
    return {
        **original,
        "metadata": {
            **meta,
            "uid": hit["metadata"]["uid"],
            "name": node,
            "iteration": 0,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {**spec, "parent_uid": pipe_uid, "pipeline_uid": pipe_uid},
        "status": {
            **status,
            "state": "completed",
            "error": "",
            "start_time": stamp,
            "end_time": stamp,
            "last_update": stamp,
        },
    }


@pytest.fixture
def served(dbdir, tmp_path):
    """An HTTP run DB served from the same SQLite file the pipelines write."""
    pytest.importorskip("fastapi")
    from mlflowlet.db.http import HTTPRunDB
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.app import create_app

    app = create_app(get_run_db(), token="records-token", ui=False)
    with ThreadedServer(app) as server:
        yield HTTPRunDB(server.url, token="records-token", retries=0)


def test_every_hit_is_its_originals_record_with_only_the_hit_fields_changed(served):
    FAIL_ONCE.clear()
    db = get_run_db()
    failed = varied.run(rows=4, cache=True)
    assert failed.state == "error" and failed.status.steps["flaky"]["state"] == "error"
    first = varied.run(rows=4, cache=True)  # flaky runs again (an error is never a hit)
    second = varied.run(rows=4, cache=True)
    third = varied.run(rows=4, cache=True)  # hits of hits
    assert first.state == second.state == third.state == "completed"
    assert "cached_from" not in first.status.steps["flaky"]
    checked = 0
    for before, after in ((first, second), (second, third)):
        for node, entry in after.status.steps.items():
            source = before.status.steps[node]["uid"]
            original, hit = db.read_run(source), db.read_run(entry["uid"])
            want_from = original["metadata"]["labels"].get(cache.CACHED_FROM) or source
            assert entry["cached_from"] == want_from, node
            assert hit == _expected_hit(original, hit, node, after.uid), node
            assert served.read_run(entry["uid"]) == hit, node  # the HTTP API reads the same
            (text,) = db._read("SELECT body FROM runs WHERE uid=?", (entry["uid"],))[0]
            assert text == dumps(hit), node  # the stored text: dumps of the record, byte-exact
            checked += 1
    assert checked == 2 * len(first.status.steps) == 10
    nan = db.read_run(third.status.steps["odd"]["uid"])["status"]["results"]
    assert math.isnan(nan["return"]) and nan["weird"] == {"$float": "not a tag"}
    table = [
        db.read_run(r.status.steps["scored"]["uid"])["status"]["iterations"] for r in (first, third)
    ]
    assert table[0] == table[1] and len(table[1]) == 3  # a header row and one per grid point
