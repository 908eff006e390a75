"""Output capture at the file-descriptor level, in the in-process, subprocess and pipeline modes.

Every kind of write a handler can make (fd writes, ``sys.stdout.buffer``, C stdio, a child
process) lands in the run's log in the order it was made, and still reaches the real fd 1/2
(pytest's ``capfd`` reads what reached them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

from mlflowlet import get_run_db, new_runner, pipeline, step

WRITES = """
import ctypes, os, subprocess, sys

def noisy(context):
    print("1 python print")
    os.write(1, b"2 fd one write\\n")
    sys.stdout.buffer.write(b"3 stdout.buffer bytes\\n")
    sys.stdout.buffer.flush()
    os.write(2, b"4 fd two write\\n")
    subprocess.run([sys.executable, "-c", "print('5 from a child process')"], check=True)
    libc = ctypes.CDLL(None)
    libc.printf(b"6 from C printf\\n")
    print("7 python print again")
"""
LINES = ["1 python print", "2 fd one write", "3 stdout.buffer bytes", "4 fd two write",
         "5 from a child process", "6 from C printf", "7 python print again"]


def _in_order(log: str) -> None:
    at = [log.find(line) for line in LINES]
    assert all(i >= 0 for i in at), (at, log)
    assert at == sorted(at), log


def _noisy(tmp_path):
    (tmp_path / "noisy.py").write_text(textwrap.dedent(WRITES))
    from mlflowlet._binding import load_module_from_file

    return load_module_from_file(str(tmp_path / "noisy.py")).noisy


def test_in_process_run_captures_every_kind_of_write_in_order(tmp_path, capfd):
    run = new_runner().run(handler=_noisy(tmp_path))
    _in_order(run.logs())
    out, err = capfd.readouterr()  # still echoed to the real fds
    assert "2 fd one write" in out and "5 from a child process" in out
    assert "6 from C printf" in out and "4 fd two write" in err


def test_the_fds_point_back_after_the_run(tmp_path, capfd):
    before = os.fstat(1)
    run = new_runner().run(handler=_noisy(tmp_path))
    after = os.fstat(1)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)
    os.write(1, b"written after the run\n")
    assert "written after the run" not in run.logs()
    assert "written after the run" in capfd.readouterr().out


def test_subprocess_runs_capture_fd_writes_and_grandchildren(tmp_path):
    (tmp_path / "noisy.py").write_text(textwrap.dedent(WRITES))
    run = new_runner(command=str(tmp_path / "noisy.py")).run(handler="noisy", watch=False)
    _in_order(run.logs())


def test_pipeline_steps_capture_fd_writes(tmp_path):
    noisy = _noisy(tmp_path)

    @step
    def loud():
        noisy(None)

    @pipeline
    def pipe():
        loud()

    result = pipe.run()
    assert result.state == "completed"
    _in_order(result.steps["loud"].logs())


def test_parallel_pipeline_steps_fd_output_goes_to_the_pipeline_run(tmp_path):
    # both steps write while both run (two barriers): fd-level bytes name no thread, so they
    # belong to the pipeline run, as the README says, never to the sibling step that began first
    both = threading.Barrier(2, timeout=60)

    @step
    def talk(tag: str = ""):
        both.wait()
        print(f"{tag} python print")
        subprocess.run([sys.executable, "-c", f"print('{tag} from a child process')"], check=True)
        os.write(1, f"{tag} fd one write\n".encode())
        both.wait()  # the first to end drains the pipes while both steps still run

    @pipeline
    def pair():
        talk(tag="A")
        talk(tag="B")

    result = pair.run(max_parallel=2)
    assert result.state == "completed"
    logs = [result.steps[n].logs() for n in ("talk", "talk-2")]
    a, b = (next(log for log in logs if f"{tag} python print" in log) for tag in "AB")
    assert a != b
    mine = get_run_db().get_log(result.uid).decode()
    for tag in "AB":
        for line in (f"{tag} from a child process", f"{tag} fd one write"):
            assert line in mine, mine
            assert line not in a and line not in b, (a, b)
