"""Text a run DB cannot store never loses a run (SQLite and PostgreSQL, real databases).

Output is bytes: a byte that is not UTF-8 (Python's lone surrogate, e.g. an ``os.listdir`` name)
is stored as that very byte. Text in a record's JSON (an error message) is stored exactly. Text
the DB keeps in a column (label values, metric keys, run names, artifact keys and tags) is
refused at the call that gave it when it holds NUL or a lone surrogate, on every backend alike.
And a write that fails to encode anyway still records the run (its results) alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from mlflowlet import get_run_db, new_runner, new_task
from mlflowlet.errors import (
    ArtifactError,
    InvalidNameError,
    NotFoundError,
    RunDBError,
    RunError,
    UnstorableValueError,
)

LATIN1_NAME = b"caf\xe9.csv"  # os.listdir gives 'caf\udce9.csv'

CHILD = textwrap.dedent(
    """
    import os, sys
    from mlflowlet import new_runner

    def train(context):
        print("UID", context.uid, flush=True)
        context.log_result("accuracy", 0.93)
        for name in os.listdir(sys.argv[1]):
            print("found", name, flush=True)
            os.write(1, b"raw " + os.fsencode(name) + b"\\n")  # past Python: the fd capture
            if sys.argv[2] == "raise":
                raise ValueError(f"empty input file {name}")
        context.log_result("loss", 0.1)

    try:
        new_runner().run(handler=train)
    except Exception as exc:
        print("RAISED", type(exc).__name__)
    """
)


def _child(tmp_path, mode: str) -> tuple[str, dict]:
    data = tmp_path / "data"
    data.mkdir()
    with open(os.path.join(os.fsencode(data), LATIN1_NAME), "wb"):
        pass
    env = {**os.environ, "MLFLOWLET_DBPATH": str(tmp_path / "runs.db")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), mode], capture_output=True, env=env,
        cwd=tmp_path, timeout=120,
    )
    assert b"UID " in out.stdout, out.stderr.decode(errors="replace")
    uid = out.stdout.split(b"UID ")[1].split()[0].decode()
    return uid, get_run_db(str(tmp_path / "runs.db")).read_run(uid)


def test_printing_an_undecodable_file_name_keeps_the_run_and_its_bytes(tmp_path):
    uid, run = _child(tmp_path, "print")
    assert run["status"]["state"] == "completed"
    assert run["status"]["results"] == {"accuracy": 0.93, "loss": 0.1}
    log = get_run_db(str(tmp_path / "runs.db")).get_log(uid)
    assert b"found " + LATIN1_NAME + b"\n" in log  # the byte as it was, not U+FFFD
    assert b"raw " + LATIN1_NAME + b"\n" in log


def test_an_error_naming_an_undecodable_file_keeps_the_run_and_says_it_exactly(tmp_path):
    uid, run = _child(tmp_path, "raise")
    assert run["status"]["state"] == "error"
    assert run["status"]["results"] == {"accuracy": 0.93}
    assert run["status"]["error"].endswith("ValueError: empty input file caf\udce9.csv\n")
    log = get_run_db(str(tmp_path / "runs.db")).get_log(uid)
    assert b"ValueError: empty input file " + LATIN1_NAME + b"\n" in log


def test_the_log_cap_keeps_the_head_byte_exact_up_to_the_cut():
    from mlflowlet._capture import LogLimit
    from mlflowlet._text import log_bytes

    limit = LogLimit(limit=10)
    head = limit.take("caf\udce9" * 5)  # the cap falls after two undecodable bytes
    assert log_bytes(head) == b"caf\xe9caf\xe9ca" and limit.stored == 10
    limit = LogLimit(limit=10)
    head = limit.take("ab" + "\u00e9" * 10)  # ...and never inside a character
    assert log_bytes(head) == ("ab" + "\u00e9" * 4).encode() and limit.dropped == 12


# refused at the call ----------------------------------------------------------------------------
BAD = ["bad\udc80", "value\x00with nul"]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path, monkeypatch):
    """The run DB URL/path of each backend, set as MLFLOWLET_DBPATH."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_rundb").url  # emptied first
    else:
        url = str(tmp_path / "runs.db")
    monkeypatch.setenv("MLFLOWLET_DBPATH", url)
    return url


def _run_refusing(call):
    """Run a handler whose ``call(context)`` must be refused; return (run, error, stored)."""
    caught = {}

    def handler(context):
        context.log_result("accuracy", 0.93)
        with pytest.raises((InvalidNameError, ArtifactError)) as info:
            call(context)
        caught["error"] = str(info.value)
        context.log_result("loss", 0.1)

    run = new_runner().run(handler=handler)
    return run, caught["error"], get_run_db().read_run(run.uid)


@pytest.mark.parametrize("value", BAD)
def test_a_label_value_no_db_can_store_is_refused_at_set_label(backend, value):
    run, error, stored = _run_refusing(lambda ctx: ctx.set_label("note", value))
    assert error.startswith(f"value of label 'note' {value!r} contains ")
    assert "\n" not in error and ("remove the NUL" in error or "os.fsencode" in error)
    assert stored["status"]["state"] == "completed" and "note" not in stored["metadata"]["labels"]
    assert stored["status"]["results"] == {"accuracy": 0.93, "loss": 0.1}


@pytest.mark.parametrize("key", BAD)
def test_a_metric_key_no_db_can_store_is_refused_at_log_metric(backend, key):
    def call(ctx):
        ctx.log_metric("loss", 0.5)
        ctx.log_metric(key, 1.0)

    run, error, stored = _run_refusing(call)
    assert error.startswith(f"metric key {key!r} contains ")
    assert stored["status"]["state"] == "completed"
    assert stored["status"]["results"] == {"accuracy": 0.93, "loss": 0.1}
    metrics = get_run_db().get_metrics(run.uid)
    assert [(m["key"], m["value"]) for m in metrics] == [("loss", 0.5)]


@pytest.mark.parametrize("value", BAD)
def test_a_label_key_or_value_no_db_can_store_is_refused_before_a_run_starts(backend, value):
    with pytest.raises(InvalidNameError, match="value of label 'k'"):
        new_runner().run(handler=lambda context: None, labels={"k": value})
    with pytest.raises(InvalidNameError, match="value of label 'k'"):
        new_task().set_label("k", value)
    with pytest.raises(InvalidNameError, match="label key"):
        new_runner().run(handler=lambda context: None, labels={f"k{value}": "v"})
    assert get_run_db().list_runs() == []


def test_a_run_name_artifact_key_or_tag_with_a_lone_surrogate_is_refused(backend):
    with pytest.raises(InvalidNameError, match="run name 'caf\\\\udce9' contains '\\\\udce9'"):
        new_runner().run(handler=lambda context: None, name="caf\udce9")
    assert get_run_db().list_runs() == []
    run, error, _ = _run_refusing(lambda ctx: ctx.log_artifact("caf\udce9.csv", body=b"x"))
    assert error.startswith("artifact key 'caf\\udce9.csv' contains '\\udce9'")
    run, error, _ = _run_refusing(lambda ctx: ctx.log_artifact("m", body=b"x", tag="v\udce9"))
    assert error.startswith("artifact tag 'v\\udce9' contains '\\udce9'")
    assert get_run_db().list_artifacts() == []


# the guards below the calls -------------------------------------------------------------------
def test_a_row_no_db_can_store_made_past_its_call_is_dropped_alone_and_said(backend, capfd):
    def handler(context):
        context.log_result("accuracy", 0.93)
        context.log_metric("loss", 0.5)
        context._recorder.add_metric("m\udc80\x00", 0, 1.0)  # past log_metric's check
        context.log_metric("loss", 0.4)
        context.commit()
        context.log_result("loss", 0.1)
        print("after the bad row")

    run = new_runner().run(handler=handler, name="guarded")
    stored = get_run_db().read_run(run.uid)
    assert stored["status"]["state"] == "completed"
    assert stored["status"]["results"] == {"accuracy": 0.93, "loss": 0.1}
    rows = [(m["key"], m["value"]) for m in get_run_db().get_metrics(run.uid)]
    assert rows == [("loss", 0.5), ("loss", 0.4)]
    assert b"after the bad row" in get_run_db().get_log(run.uid)
    err = capfd.readouterr().err
    assert err.count("records no rows for 'm\\udc80\\x00': no run DB can store") == 1


def test_a_record_no_db_can_store_still_leaves_the_run_recorded_as_before(backend):
    def handler(context):
        context.log_result("accuracy", 0.93)
        context.commit()
        context._run.metadata.labels["note"] = "bad\udc80\x00"  # past set_label's check
        context.log_result("loss", 0.1)

    with pytest.raises(RunDBError, match="cannot store .*still recorded as it was before"):
        new_runner().run(handler=handler, name="guarded")
    (stored,) = get_run_db().list_runs(name="guarded")
    assert stored["status"]["state"] == "running" and stored["status"]["results"] == {
        "accuracy": 0.93
    }


@pytest.mark.parametrize("value", BAD)
def test_the_db_itself_refuses_such_text_with_a_clear_run_db_error(backend, value):
    run = {"metadata": {"uid": "u1", "name": "n", "project": "p", "labels": {"k": value}},
           "status": {"state": "completed"}}
    db = get_run_db()
    if backend.endswith(".db") and "\x00" in value:  # SQLite text holds NUL: stored as it is
        db.store_run(run, "u1", "p")
        assert db.read_run("u1", "p")["metadata"]["labels"] == {"k": value}
        assert [r["metadata"]["uid"] for r in db.list_runs(labels={"k": value})] == ["u1"]
        return
    with pytest.raises(UnstorableValueError) as info:
        db.store_run(run, "u1", "p")
    text = str(info.value)
    assert "cannot store" in text and "cannot reach" not in text and "\n" not in text
    with pytest.raises(NotFoundError):  # nothing was stored
        db.read_run("u1", "p")


def test_a_pipeline_step_printing_an_undecodable_name_is_recorded(tmp_path, dbdir):
    from mlflowlet import pipeline, step

    @step
    def lister(context):
        context.log_result("n", 1)
        context.logger.info("found caf\udce9.csv")
        raise ValueError("cannot read caf\udce9.csv")

    @step
    def sibling(context):
        context.log_result("trained", 1)

    @pipeline(name="sp")
    def sp():
        lister()
        sibling()

    with pytest.raises(RunError, match="lister"):
        sp.run(max_parallel=2).wait(raise_on_error=True)
    db = get_run_db()
    runs = {r["metadata"]["name"]: r["status"] for r in db.list_runs(project="") if r}
    assert runs["sibling"]["state"] == "completed" and runs["sibling"]["results"] == {"trained": 1}
    assert runs["lister"]["state"] == "error" and runs["lister"]["results"] == {"n": 1}
    assert "cannot read caf\udce9.csv" in runs["lister"]["error"]
