"""A process whose threads are tracking runs can fork: its children lose nothing and never hang.

multiprocessing forks by default on Linux (Python 3.11), as gunicorn and the Dask nanny do, so the
children here are forked on purpose from a parent with the flush thread running, a long
run committing from another thread, and a thread inside a write transaction of the same DB.
"""

from __future__ import annotations

import multiprocessing
import os
import threading

from mlflowlet import new_runner
from mlflowlet._flush import flusher
from mlflowlet.db import get_run_db

RUNS_PER_CHILD = 100
CHILDREN = 4
_release_at_fork: list[threading.Event] = []
_hook_registered = False


def _release_before_fork() -> None:
    # registered after mlflowlet's hooks, so it runs before them: the writer holding a
    # transaction is let go only once the fork has begun
    while _release_at_fork:
        _release_at_fork.pop().set()


def _tick(context, i: int) -> None:
    print(f"child tick {i}")
    context.log_result("i", i)


def _child(worker: int) -> None:
    runner = new_runner()
    for i in range(RUNS_PER_CHILD):
        runner.run(handler=_tick, params={"i": i}, labels={"worker": worker})


def _long_run(started: threading.Event, stop: threading.Event):
    def long(context) -> None:
        n = 0
        while not stop.is_set():
            print(f"parent tick {n}")  # through the stdout tee, into this run's log
            context.log_result("n", n)
            context.commit()  # one write transaction after another while the children start
            started.set()
            n += 1

    return long


def _hold_a_transaction(db, inside: threading.Event, release: threading.Event) -> None:
    def hold(_conn) -> None:
        inside.set()
        release.wait(timeout=60)

    db._transact(hold)


def test_children_forked_from_a_busy_tracking_process_lose_nothing(dbdir, monkeypatch):
    global _hook_registered
    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "0.05")
    db = get_run_db()  # imports the SQLite backend, whose fork hooks must come first
    if not _hook_registered:
        os.register_at_fork(before=_release_before_fork)
        _hook_registered = True

    started, stop = threading.Event(), threading.Event()
    long_run = threading.Thread(
        target=lambda: new_runner().run(handler=_long_run(started, stop), name="long")
    )
    long_run.start()
    inside, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_a_transaction, args=(db, inside, release))
    procs = []
    try:
        assert started.wait(timeout=30)
        assert flusher._thread is not None and flusher._thread.is_alive()
        _release_at_fork.append(release)
        holder.start()
        assert inside.wait(timeout=30)

        fork = multiprocessing.get_context("fork")
        procs = [fork.Process(target=_child, args=(w,)) for w in range(CHILDREN)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=90)
        assert [p.exitcode for p in procs] == [0] * CHILDREN  # None would be a hung child
    finally:
        release.set()
        stop.set()
        for proc in procs:
            if proc.exitcode is None:
                proc.kill()
        holder.join(timeout=30)
        long_run.join(timeout=30)

    for worker in range(CHILDREN):
        mine = db.list_runs(labels=f"worker={worker}")
        assert sorted(r["status"]["results"]["i"] for r in mine) == list(range(RUNS_PER_CHILD))
        assert {r["status"]["state"] for r in mine} == {"completed"}
    (parent,) = db.list_runs(name="long")
    assert parent["status"]["state"] == "completed"
    assert parent["status"]["results"]["n"] >= 1
    assert "parent tick 0" in db.get_log(parent["metadata"]["uid"]).decode()


def test_a_child_forked_while_another_thread_writes_can_end_its_copy_of_the_run(dbdir):
    """The parent's writes in flight are not the child's: ending the run there must not wait."""
    writing, release = threading.Event(), threading.Event()

    def handler(context) -> int:
        def write_until_released() -> None:
            with context._recorder.writing("result", "slow"):
                writing.set()
                release.wait(timeout=60)

        writer = threading.Thread(target=write_until_released)
        writer.start()
        assert writing.wait(timeout=30)
        pid = os.fork()
        if pid == 0:  # the child: no writer thread here, so the end must not wait for one
            guard = context._recorder.guard
            closing = threading.Thread(target=guard.close, args=(True,), daemon=True)
            closing.start()
            closing.join(timeout=20)
            os._exit(3 if closing.is_alive() else 0 if guard.forked_from == os.getppid() else 4)
        release.set()
        writer.join(timeout=30)
        return os.waitpid(pid, 0)[1]

    run = new_runner().run(handler=handler)
    assert run.state == "completed"
    assert run.results["return"] == 0  # a wait status: 0 is "exited 0", a hang exits 3


def _child_after_the_run_ended(child_body):
    """Run a handler that forks a child; once the run ended the child runs ``child_body(context)``
    and exits with the code it returns. Return the run and the child's wait status."""
    go_r, go_w = os.pipe()
    children = []

    def handler(context) -> None:
        context.log_result("x", 1)
        pid = os.fork()
        if pid == 0:  # the child: waits until the parent ended the run
            os.close(go_w)
            os.read(go_r, 1)
            os._exit(child_body(context))
        children.append(pid)

    run = new_runner().run(handler=handler)
    os.close(go_r)
    os.write(go_w, b"x")  # the run ended and its final record is written: the child may go
    os.close(go_w)
    return run, os.waitpid(children[0], 0)[1]


def test_a_forked_child_cannot_write_into_its_parents_run_even_after_it_ended(dbdir):
    """The child's copy of the record would overwrite the parent's (completed -> running)."""
    from mlflowlet.errors import ForkedRunError

    def child(context) -> int:
        try:
            context.log_result("from_child", "late")
            context.commit()
        except ForkedRunError as exc:
            return 0 if f"recorded by process {os.getppid()}" in str(exc) else 5
        return 4  # accepted: the bug

    run, status = _child_after_the_run_ended(child)
    assert status == 0  # exit 0: ForkedRunError naming this process
    stored = get_run_db().read_run(run.uid)["status"]
    assert stored["state"] == "completed" and stored["results"] == {"x": 1}


def test_a_forked_child_neither_ends_its_parents_run_nor_takes_it_for_its_own(dbdir):
    from mlflowlet import get_or_create_ctx

    def child(context) -> int:  # a multiprocessing worker, or code that returns or exits here
        own = get_or_create_ctx("child-run")
        context._recorder.finish("error", "the child's copy ended")  # a no-op in a copy
        return 0 if own.uid != context.uid else 6

    run, status = _child_after_the_run_ended(child)
    assert status == 0  # the child got a run of its own
    stored = get_run_db().read_run(run.uid)["status"]
    assert stored["state"] == "completed" and stored["results"] == {"x": 1}
