"""Writes after a run ended: refused naming the run and the write, recorded nowhere."""

from __future__ import annotations

import os
import threading

import pytest

from mlflowlet import get_run_db, new_runner
from mlflowlet.errors import RunEndedError, RunError

WRITES = {
    "result": lambda ctx: ctx.log_result("late", 1),
    "committed result": lambda ctx: ctx.log_result("late", 1, commit=True),
    "results": lambda ctx: ctx.log_results({"late": 1}),
    "metric": lambda ctx: ctx.log_metric("late_m", 1.0),
    "label": lambda ctx: ctx.set_label("late", "yes"),
    "annotation": lambda ctx: ctx.set_annotation("late", "yes"),
    "artifact": lambda ctx: ctx.log_artifact("late_art", body=b"x"),
    "commit": lambda ctx: ctx.commit(),
    "input": lambda ctx: ctx.get_input("late_in", "memory://mlflowlet-test/late.csv"),
    "input read as a URL": lambda ctx: ctx.get_input("late.txt"),
    "input replaced": lambda ctx: ctx.get_input("early_in", "memory://mlflowlet-test/late.csv"),
}


def _files(root) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


@pytest.mark.parametrize("what", list(WRITES))
def test_a_write_after_the_run_ended_raises_and_changes_nothing(what, tmp_path):
    # a thread the handler started wrote after the end: dropped from the DB but kept on the
    # returned run, a late artifact's file stored unrecorded, a committed result rewrote the end
    go, caught, threads = threading.Event(), [], []

    def train(context):
        def late():
            go.wait()
            try:
                WRITES[what](context)
            except RunEndedError as exc:
                caught.append(exc)

        threads.append(threading.Thread(target=late))
        threads[0].start()
        context.log_result("early", 1)
        context.get_input("early_in", "memory://mlflowlet-test/early.csv")

    run = new_runner().run(handler=train, artifact_path=str(tmp_path / "arts"))
    before = (run.to_dict(), get_run_db().read_run(run.uid), _files(tmp_path / "arts"))
    go.set()
    threads[0].join()
    (exc,) = caught
    assert isinstance(exc, RunError) and "\n" not in str(exc)
    assert f"run 'train' ({run.uid}) already ended completed" in str(exc)
    named = {"commit": "a commit", "input replaced": "input 'early_in'"}.get(what, "'late")
    assert named in str(exc)
    assert run.to_dict() == before[0] and run.results == {"early": 1}
    assert get_run_db().read_run(run.uid) == before[1]
    assert get_run_db().get_metrics(run.uid) == []
    assert _files(tmp_path / "arts") == before[2]


def test_get_param_after_the_end_does_not_record_its_default():
    holder = []

    def train(context):
        holder.append(context)

    run = new_runner().run(handler=train)
    assert holder[0].get_param("late", 5) == 5
    assert "late" not in run.spec.params
    assert "late" not in get_run_db().read_run(run.uid)["spec"]["params"]


def test_the_end_refuses_new_writes_at_once_and_waits_only_for_those_in_flight():
    """Threads logging in a loop cannot starve a run's end: it closes, then waits."""
    import threading

    from mlflowlet._writeguard import WriteGuard

    guard = WriteGuard()
    assert guard.admit()  # one write in flight, held until released below
    closing = threading.Thread(target=guard.close, args=(True,))
    closing.start()
    deadline = threading.Event()
    for _ in range(1000):  # bounded: close sets `closed` before it waits
        with guard.lock:
            if guard.closed:
                break
        deadline.wait(0.01)
    assert guard.closed and not guard.admit()  # a new write is refused while one is in flight
    assert closing.is_alive()  # the end still waits for the one in flight
    with guard:  # ... which ends now
        pass
    closing.join(timeout=30)
    assert not closing.is_alive() and guard.inflight == 0


def test_a_run_ends_while_eight_threads_keep_logging(tmp_path):
    import threading

    from mlflowlet import new_runner
    from mlflowlet.errors import RunEndedError

    stop, refused = threading.Event(), []

    def handler(context):
        def keep_logging(n: int) -> None:
            i = 0
            while not stop.is_set():
                try:
                    context.log_result(f"t{n}", i)
                except RunEndedError:
                    refused.append(n)
                    return
                i += 1

        for n in range(8):
            threading.Thread(target=keep_logging, args=(n,), daemon=True).start()
        return "done"

    try:
        run = new_runner().run(handler=handler)
    finally:
        stop.set()
    assert run.state == "completed" and run.results["return"] == "done"


def test_inputs_recorded_before_the_end_are_still_read_after_it(tmp_path):
    holder = []
    (tmp_path / "in.txt").write_bytes(b"early")

    def train(context):
        holder.append(context)
        context.get_input("data", str(tmp_path / "in.txt"))

    run = new_runner().run(handler=train)
    ctx = holder[0]
    assert ctx.get_input("data").get() == b"early"  # a read: nothing recorded
    assert ctx.get_input("data", str(tmp_path / "in.txt")).get() == b"early"  # the same URL
    assert list(ctx.inputs) == ["data"]
    assert get_run_db().read_run(run.uid)["spec"]["inputs"] == {"data": str(tmp_path / "in.txt")}


class _HeldParams(dict):
    """Params whose first write waits for ``go``: a get_param that got past the end's check."""

    def __init__(self, *args, go, entered):
        super().__init__(*args)
        self.go, self.entered = go, entered

    def __setitem__(self, key, value):
        self.entered.set()
        self.go.wait()
        super().__setitem__(key, value)


def test_a_get_param_under_way_when_the_run_ends_lands_in_the_final_record(monkeypatch):
    # it checked 'ended?', then wrote its default after the final record was taken: the
    # record lacked the param the handler's thread went on with
    from mlflowlet._writeguard import WriteGuard

    go, entered, threads = threading.Event(), threading.Event(), []
    close = WriteGuard.close

    def close_then_release(self, wait):
        if self.inflight:  # the get_param is counted: the end waits for it
            go.set()
        close(self, wait)

    monkeypatch.setattr(WriteGuard, "close", close_then_release)

    def train(context):
        context._run.spec.params = _HeldParams(context._run.spec.params, go=go, entered=entered)
        threads.append(threading.Thread(target=context.get_param, args=("late", 5)))
        threads[0].start()
        entered.wait()

    run = new_runner().run(handler=train)
    go.set()
    threads[0].join()
    assert run.spec.params == {"late": 5}
    assert get_run_db().read_run(run.uid)["spec"]["params"] == {"late": 5}
