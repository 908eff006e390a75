"""The attempts of a map item that retries each write their own directory, and a failed attempt
kept as its own run keeps its own bytes, recorded as its versions (not the item's).

Each attempt writes the same file name into ``context.artifact_path`` and logs it, as a real
handler does: a shared directory let the retry overwrite the bytes the failure recorded.
"""

from __future__ import annotations

import os
import threading

from mlflowlet import get_run_db, item, pipeline, step
from mlflowlet.datastore._hashing import digest_bytes, label, split

CALLS: list[tuple[str, int]] = []


@step(retries=1)
def save(context, tag: str) -> str:
    attempt = context.workflow.attempt
    CALLS.append((tag, attempt))
    os.makedirs(context.artifact_path, exist_ok=True)
    path = os.path.join(context.artifact_path, "model.pkl")
    with open(path, "w") as fh:
        fh.write(f"{tag} attempt {attempt}")
    context.log_artifact("model", local_path=path)
    if tag == "bad" and attempt == 1:
        raise ValueError("first attempt fails")
    return tag


@pipeline
def mapped(tags: list = ["ok", "bad"]):  # noqa: B006 - a pipeline default, never mutated
    save.map(items=tags, item_param="tag")


@pipeline
def body(tag: str):
    save(tag=tag)


@pipeline
def looped(tags: list = ["ok", "bad"]):  # noqa: B006 - a pipeline default, never mutated
    body.map(items=tags, tag=item)


def _bytes_match(art: dict) -> bytes:
    """Read a version's bytes and check them against its recorded hash; return them."""
    with open(art["uri"], "rb") as fh:
        data = fh.read()
    algo, _ = split(art["hash"])
    assert label(algo, digest_bytes(algo, data)) == art["hash"], (art["uri"], data)
    return data


def _check(run) -> None:
    assert run.state == "completed", run.error
    db, uid = get_run_db(), run.steps["save"].uid
    (kept,) = [
        r
        for r in db.list_runs(name="save")
        if r["metadata"].get("annotations", {}).get("item_uid") == uid
    ]
    it = int(kept["metadata"]["annotations"]["item_iteration"])
    last = db.read_run(uid, iter=it)
    kept_uid = kept["metadata"]["uid"]
    (failed,) = kept["status"]["artifacts"]
    (done,) = last["status"]["artifacts"]
    assert failed["uri"] != done["uri"]
    assert _bytes_match(failed) == b"bad attempt 1"  # the retry did not overwrite them
    assert _bytes_match(done) == b"bad attempt 2"
    assert (failed["producer"]["uid"], failed["producer"]["iteration"]) == (kept_uid, 0)
    assert (done["producer"]["uid"], done["producer"]["iteration"]) == (uid, it)
    # the DB's versions say the same: the failed attempt's is the kept run's, with its bytes
    versions = db.list_artifacts("=model", tag="*")
    by_uri = {v["uri"]: v for v in versions}
    assert len(by_uri) == len(versions) == 3  # ok, bad attempt 1, bad attempt 2
    stored = by_uri[failed["uri"]]
    assert stored["uid"] == failed["uid"] and stored["producer"]["uid"] == kept_uid
    assert db.read_artifact("model", uid=failed["uid"])["producer"]["uid"] == kept_uid
    for version in versions:
        _bytes_match(version)


def test_a_retried_map_items_failed_attempt_keeps_its_own_artifact_bytes(dbdir):
    CALLS.clear()
    run = mapped.run(max_parallel=1)
    assert sorted(CALLS) == [("bad", 1), ("bad", 2), ("ok", 1)]
    _check(run)


def test_a_retried_body_steps_failed_attempt_keeps_its_own_artifact_bytes(dbdir):
    CALLS.clear()
    run = looped.run(max_parallel=1)
    assert sorted(CALLS) == [("bad", 1), ("bad", 2), ("ok", 1)]
    _check(run)


BAD_LOGGED, OK_STORED = threading.Event(), threading.Event()


@step(retries=1)
def racer(context, tag: str) -> str:
    attempt = context.workflow.attempt
    if tag == "ok":
        assert BAD_LOGGED.wait(60)
        context.log_artifact("model", body=b"ok")
        context.commit()  # stored (as the latest "model") before the bad item's attempt fails
        OK_STORED.set()
    elif attempt == 1:
        context.log_artifact("model", body=b"bad attempt 1")
        context.commit()
        BAD_LOGGED.set()
        assert OK_STORED.wait(60)
        raise ValueError("first attempt fails")
    return tag  # the bad item's second attempt logs nothing


@pipeline
def racing(tags: list = ["ok", "bad"]):  # noqa: B006 - a pipeline default, never mutated
    racer.map(items=tags, item_param="tag", parallel=2)


def test_moving_a_failed_attempts_versions_leaves_another_items_latest_tag(dbdir):
    BAD_LOGGED.clear()
    OK_STORED.clear()
    run = racing.run(max_parallel=2)
    assert run.state == "completed", run.error
    latest = get_run_db().read_artifact("model")
    assert latest["producer"]["uid"] == run.steps["racer"].uid
    assert _bytes_match(latest) == b"ok"
