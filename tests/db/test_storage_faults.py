"""Storage faults: a full disk, a read-only DB or artifact directory, a DB with damaged pages.

Each ends in one clear error naming the file and the cause, keeps what was committed, and
leaves the run in a terminal state wherever the DB can be written. The full and read-only
filesystems are real tmpfs mounts (we run as root in CI); where mounting is not allowed the
tests skip and say why.
"""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

from mlflowlet import new_runner
from mlflowlet.db.sqlite import SQLiteRunDB
from mlflowlet.errors import RunDBError


def wait_for(predicate, timeout: float = 60.0, what: str = "the condition"):
    deadline, pause = time.monotonic() + timeout, 0.01
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs mounted at ``tmp_path/small`` (unmounted afterwards)."""
    where = tmp_path / "small"
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a small filesystem")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not permitted'})")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder) -> str:
    """Fill the filesystem holding ``folder`` to the last byte; return the filler's path."""
    path = os.path.join(folder, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"x" * size)
            except OSError:
                continue
    finally:
        os.close(fd)
    return path


def _remount_read_only(where) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def ok(context):
    context.log_result("kept", 1)


def test_a_full_disk_is_one_clear_error_and_the_run_is_recorded_once_space_returns(small_fs):
    db = SQLiteRunDB(str(small_fs / "db" / "mlflowlet.db"))
    first = new_runner().run(handler=ok, name="first", db=db)
    filler = _fill(small_fs)

    def big(context):
        context.log_result("big", "y" * 300_000)

    with pytest.raises(RunDBError) as caught:
        new_runner().run(handler=big, name="big", db=db)
    text = str(caught.value)
    del caught  # its traceback holds the run's context: the retry must not depend on that
    gc.collect()
    assert text.startswith(f"run DB {db.path} cannot be written: the disk is full")
    assert "rollback" not in text and "\n" not in text
    assert "run 'big'" in text and "retried" in text
    assert [r["metadata"]["name"] for r in db.list_runs()] == ["first"]  # nothing lost
    assert db.read_run(first.uid)["status"]["results"] == {"kept": 1}
    os.remove(filler)  # space returns: the flush thread writes the terminal record
    (big_run,) = wait_for(lambda: db.list_runs(name="big"), what="the big run's record")
    assert big_run["status"]["state"] == "error"
    assert "the disk is full" in big_run["status"]["error"]
    db.close()


def test_a_disk_filling_mid_run_keeps_the_start_and_records_the_end_later(small_fs):
    db = SQLiteRunDB(str(small_fs / "db" / "mlflowlet.db"))
    fillers = []

    def filling(context):
        context.log_result("small", 1)
        context.commit()
        fillers.append(_fill(small_fs))
        context.log_result("big", "y" * 300_000)

    with pytest.raises(RunDBError, match="the disk is full") as caught:
        new_runner().run(handler=filling, name="filling", db=db)
    assert "ended completed" in str(caught.value)
    del caught
    gc.collect()
    (stored,) = db.list_runs(name="filling")
    assert stored["status"]["state"] == "running"  # this process is alive: it retries
    assert stored["status"]["results"] == {"small": 1}
    os.remove(fillers[0])
    done = wait_for(lambda: [r for r in db.list_runs(name="filling")
                             if r["status"]["state"] == "completed"], what="the completed record")
    assert done[0]["status"]["results"]["big"] == "y" * 300_000
    db.close()


def test_a_read_only_db_is_one_clear_error_and_still_reads(small_fs):
    path = small_fs / "db" / "mlflowlet.db"
    db = SQLiteRunDB(str(path))
    first = new_runner().run(handler=ok, name="first", db=db)
    db.close()
    _remount_read_only(small_fs)
    db = SQLiteRunDB(str(path))
    assert db.read_run(first.uid)["status"]["results"] == {"kept": 1}
    with pytest.raises(RunDBError) as caught:
        new_runner().run(handler=ok, name="second", db=db)
    text = str(caught.value)
    assert text.startswith(f"run DB {path} cannot be written: it is read-only")
    assert "rollback" not in text
    assert [r["metadata"]["name"] for r in db.list_runs()] == ["first"]
    db.close()


def test_a_read_only_artifact_directory_fails_the_run_naming_the_file(small_fs):
    art = small_fs / "art"
    art.mkdir()
    _remount_read_only(small_fs)

    def logs_a_file(context):
        context.log_result("before", 1)
        context.log_artifact("model.txt", body=b"weights")

    run = new_runner().run(handler=logs_a_file, name="ro", artifact_path=str(art),
                           raise_on_error=False)
    assert run.state == "error"
    last = run.error.strip().splitlines()[-1]
    assert "Read-only file system" in last and str(art) in last
    from mlflowlet import get_run_db

    stored = get_run_db().read_run(run.uid)["status"]
    assert stored["state"] == "error" and stored["results"] == {"before": 1}


# damaged pages ----------------------------------------------------------------------------------
def _damage_table(path, table: str) -> int:
    """Overwrite the pages of ``table`` only, as failing storage would; return how many."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name=?", (table,))]
    with open(path, "r+b") as fh:
        for page in pages:
            fh.seek((page - 1) * size + 8)
            fh.write(os.urandom(256))
    return len(pages)


def _cli(*args: str, db) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlflowlet", *args, "--db", str(db)],
                          capture_output=True, text=True, timeout=120)


def test_a_damaged_db_is_found_by_get_runs_and_doctor_and_refuses_writes(tmp_path):
    path = tmp_path / "damaged" / "mlflowlet.db"
    db = SQLiteRunDB(str(path))

    def chatty(context):
        print("line of output\n" * 5000)  # the logs table: pages `get runs` never reads

    for i in range(20):
        new_runner().run(handler=ok, name=f"r{i}", db=db)
    new_runner().run(handler=chatty, name="chatty", db=db)
    db.close()
    assert _cli("doctor", db=path).returncode == 0
    assert _damage_table(path, "logs") > 3

    assert _cli("get", "runs", "--no-check", db=path).returncode == 0  # the runs still read
    listed = _cli("get", "runs", db=path)
    assert listed.returncode == 1
    assert listed.stderr.startswith(f"error: run DB {path} is damaged")
    doctor = _cli("doctor", db=path)
    assert doctor.returncode == 1
    assert "db-integrity: failed" in doctor.stdout and f"run DB {path} is damaged" in doctor.stdout
    assert "dead-runs: skipped" in doctor.stdout and "artifacts: skipped" in doctor.stdout
    assert _cli("db", "check", db=path).returncode == 1  # the alias
    # once found, no process writes to it any more: one clear error naming the file
    with pytest.raises(RunDBError, match=f"run DB {path} is damaged"):
        new_runner().run(handler=ok, name="after", db=SQLiteRunDB(str(path)))


def test_doctor_on_a_sound_db_reports_every_check():
    from mlflowlet import get_run_db

    db = get_run_db()
    new_runner().run(handler=ok, db=db)
    done = _cli("doctor", db=os.path.dirname(db.path))
    assert done.returncode == 0, done.stderr
    assert "db-integrity: ok" in done.stdout and "dead-runs: ok" in done.stdout


def test_doctor_checks_a_postgresql_db_and_says_why_it_skips_a_server(postgres_rundb, tmp_path):
    from mlflowlet.doctor import open_target, run_checks

    new_runner().run(handler=ok, db=postgres_rundb)
    findings = run_checks(open_target(postgres_rundb.url))
    assert [(f.check, f.status) for f in findings] == [
        ("db-integrity", "ok"), ("dead-runs", "ok"), ("artifacts", "ok")
    ]
    pytest.importorskip("fastapi")
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.app import create_app

    app = create_app(SQLiteRunDB(str(tmp_path / "srv.db")), token="doctor-token", ui=False)
    with ThreadedServer(app) as server:
        (integrity, *_) = run_checks(open_target(server.url))
    assert integrity.status == "skipped" and "run `mlflowlet doctor` where" in integrity.note
