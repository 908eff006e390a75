"""``collect_garbage`` (``mlflowlet gc``) and ``verify_artifacts`` (``mlflowlet doctor``)."""

from __future__ import annotations

import os
import subprocess
import sys

from mlflowlet import get_run_db, new_runner, new_task
from mlflowlet.artifacts import collect_garbage, verify_artifacts


def _log(name: str, body: bytes, **task):
    def handler(context):
        context.log_artifact("model", body=body, format="bin")

    return new_runner().run(new_task(name=name, artifact_path="out", **task), handler=handler)


def _uri(run, key="model"):
    return next(a["uri"] for a in run.status.artifacts if a["key"] == key)


def test_gc_removes_only_what_deleted_runs_own():
    keep, drop = _log("keep", b"kept"), _log("drop", b"dropped")
    db = get_run_db()
    db.del_runs(name="drop")
    assert os.path.exists(_uri(drop))  # del_runs removes records only; gc the files
    dry = collect_garbage(dry_run=True)
    assert dry.files == [_uri(drop)] and os.path.exists(_uri(drop))
    report = collect_garbage()
    assert report.files == [_uri(drop)] and report.bytes == len(b"dropped")
    assert report.versions == [("default", "model", drop.status.artifacts[0]["uid"], 0)]
    assert not os.path.exists(_uri(drop))
    assert not os.path.exists(os.path.join("out", drop.uid))  # its empty run directory too
    assert open(_uri(keep), "rb").read() == b"kept"
    assert [a["tree"] for a in db.list_artifacts("model", tag="*")] == [keep.uid]
    assert collect_garbage().files == []  # nothing left to collect


def test_gc_keeps_a_file_another_version_references(tmp_path):
    owner = _log("owner", b"shared")

    def borrow(context):  # records the owner's file where it is
        context.log_artifact("borrowed", local_path=_uri(owner), upload=False)

    new_runner().run(new_task(name="borrower"), handler=borrow)
    get_run_db().del_runs(name="owner")
    report = collect_garbage()
    assert report.kept == [_uri(owner)] and report.files == []
    assert open(_uri(owner), "rb").read() == b"shared"


def test_gc_never_removes_a_file_recorded_where_it_is(tmp_path):
    mine = tmp_path / "mine.bin"
    mine.write_bytes(b"user data")

    def handler(context):
        context.log_artifact("mine", local_path=str(mine), upload=False)

    new_runner().run(new_task(name="rec"), handler=handler)
    get_run_db().del_runs(name="rec")
    report = collect_garbage()
    assert len(report.versions) == 1 and report.files == []
    assert mine.read_bytes() == b"user data"


def test_gc_of_a_deleted_best_iteration_keeps_the_file_the_parent_links():
    def train(context, p: int):
        context.log_result("score", p)
        context.log_artifact("model", body=f"m{p}".encode(), format="bin")

    task = new_task(name="sweep", artifact_path="out").with_hyper_params(
        {"p": [1, 2]}, selector="max.score"
    )
    run = new_runner().run(task, handler=train)
    best = _uri(run)
    db = get_run_db()
    db.del_run(run.uid, iter=2)  # the best iteration's record only
    report = collect_garbage()
    assert report.kept == [best] and report.files == []
    assert run.artifact("model").get() == b"m2"  # the parent's link still reads
    db.del_run(run.uid)
    report = collect_garbage()
    assert best in report.files and not os.path.exists(best)
    assert not os.path.exists(os.path.join("out", run.uid))
    assert list(db.list_artifacts(tag="*")) == []


def test_gc_command_line(dbdir):
    drop = _log("drop", b"x")
    get_run_db().del_runs(name="drop")
    cmd = [sys.executable, "-m", "mlflowlet", "gc"]
    out = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"would remove {_uri(drop)}" in out.stdout and os.path.exists(_uri(drop))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert "removed 1 artifact version(s) and 1 file(s), 1 bytes" in out.stdout
    assert not os.path.exists(_uri(drop))


def test_verify_artifacts_names_every_damaged_version():
    good, bad, gone = _log("good", b"fine"), _log("bad", b"original"), _log("gone", b"x")
    with open(_uri(bad), "r+b") as f:
        f.write(b"O")  # same size: only the hash sees it
    os.unlink(_uri(gone))
    report = verify_artifacts()
    assert report.checked == 3 and report.unverifiable == []
    assert len(report.problems) == 2
    (tampered,) = [p for p in report.problems if _uri(bad) in p]
    assert tampered.startswith("project 'default': artifact 'model' version ")
    assert "blake3" in tampered
    (missing,) = [p for p in report.problems if _uri(gone) in p]
    assert "missing" in missing
    assert verify_artifacts(project="other").problems == []
    assert _uri(good) not in " ".join(report.problems)


def test_doctor_command_reports_damaged_versions(dbdir):
    bad = _log("bad", b"original")
    cmd = [sys.executable, "-m", "mlflowlet", "doctor"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "artifacts: ok (1 stored object(s) verified)" in out.stdout
    with open(_uri(bad), "r+b") as f:
        f.write(b"O")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "artifacts: failed" in out.stdout
    assert f"at '{_uri(bad)}'" in out.stdout and "blake3" in out.stdout


def test_gc_keeps_the_files_a_cached_pipeline_step_still_lists():
    from mlflowlet import pipeline, step

    @step(outputs=["data"])
    def make(context):
        context.log_artifact("data", body=b"cached bytes", format="bin")

    @pipeline(name="cached")
    def cached():
        make()

    first = cached.run(cache=True, artifact_path="out")
    second = cached.run(cache=True, artifact_path="out")
    db = get_run_db()
    (hit,) = [
        r for r in db.list_runs(labels=f"pipeline_uid={second.uid}") if r["status"]["artifacts"]
    ]
    uri = hit["status"]["artifacts"][0]["uri"]
    assert uri.split("/")[-2] != hit["metadata"]["uid"]  # the first run's file, reused
    for run in db.list_runs(labels=f"pipeline_uid={first.uid}"):
        db.del_run(run["metadata"]["uid"])
    report = collect_garbage()
    assert uri in report.kept and os.path.exists(uri)
