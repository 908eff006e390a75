"""Issue 18: trivial steps of a fan-out run in the scheduler's thread once this run has shown them
trivial; blocking steps keep overlapping in the pool, and the records are those of a step run
alone. Learning is made deterministic by counting every call as trivial (``TRIVIAL`` raised), so
no test depends on how fast the machine is."""

from __future__ import annotations

import os
import re
import threading
from types import SimpleNamespace

import pytest

from mlflowlet import get_run_db, pipeline, step
from mlflowlet.pipelines import _scheduler
from mlflowlet.pipelines._scheduler import AHEAD, LEARN, Learner

THREADS: dict[str, str] = {}  # step name -> the thread that ran it
FAN = 40
WORKERS = 4  # the default parallelism in these tests (os.cpu_count patched)
MEET = threading.Barrier(2, timeout=30)  # a timeout so a deadlock fails the test, not hangs it


@step
def leaf(context, i: int = 0) -> int:
    THREADS[context.name] = threading.current_thread().name
    return i + 1


@step
def gather(context, **parts: int) -> int:
    THREADS[context.name] = threading.current_thread().name
    return sum(parts.values())


@step
def meet(context, i: int = 0) -> int:
    THREADS[context.name] = threading.current_thread().name
    MEET.wait()  # passes only while the other meet step runs at the same time
    return i


@pipeline(name="inline-fan")
def fan():
    gather(**{f"x{i}": leaf(i=i).output for i in range(FAN)})


@pipeline(name="inline-meet")
def fan_and_meet():
    meet(i=1)  # ready first: both get a pool thread before any leaf may run inline
    meet(i=2)
    for i in range(FAN):
        leaf(i=i)


SET = threading.Event()


@step
def waits(context, block: bool = False, prev: int = 0) -> int:
    THREADS[context.name] = threading.current_thread().name
    if block and not SET.wait(30):  # a timeout so a deadlock fails the test, not hangs it
        raise RuntimeError("the step that sets the event never ran")
    return prev + 1


@step
def sets(context) -> int:
    SET.set()
    return 1


@pipeline(name="inline-waits")
def waits_for_a_sibling():
    a = waits(prev=0)
    b = waits(prev=a.output)
    c = waits(prev=b.output)
    waits(block=True, prev=c.output)  # trivial three times, then it waits for `sets`
    sets().after(c)  # ready with it: it must get a thread, not wait behind an inlined step


@pipeline(name="inline-after-a-chain")
def fan_after_a_chain():
    first = waits(prev=0)
    gate = sets().after(first)  # made ready by `first`, a function called once
    for i in range(FAN):
        leaf(i=i).after(gate)


@pytest.fixture
def trivial(monkeypatch):
    """Every call counts as trivial, and the default parallelism is WORKERS pool threads."""
    monkeypatch.setattr(_scheduler, "TRIVIAL", 3600.0)
    monkeypatch.setattr(os, "cpu_count", lambda: WORKERS)
    THREADS.clear()


def _leaves() -> list[str]:
    return [name for name in THREADS if name.startswith("leaf")]


def test_a_fan_out_of_trivial_steps_runs_inline_once_learned(dbdir, trivial):
    run = fan.run()
    assert run.state == "completed", run.error
    here = threading.current_thread().name
    inline = [n for n in _leaves() if THREADS[n] == here]
    pooled = [n for n in _leaves() if THREADS[n] != here]
    assert len(inline) + len(pooled) == FAN
    # the first calls teach in the pool (at most what it holds, plus refills before LEARN)
    assert LEARN <= len(pooled) <= WORKERS * AHEAD + LEARN - 1, THREADS
    assert all(THREADS[n].startswith("mlflowlet-step-") for n in pooled)
    assert len(inline) >= FAN - (WORKERS * AHEAD + LEARN - 1)
    assert run.steps["gather"].results["return"] == sum(range(1, FAN + 1))


def test_a_step_made_ready_and_run_no_longer_holds_others_back_from_running_inline(
    dbdir, trivial
):
    # `sets` ran once (never known trivial): once it has run, it is no ready step of another
    # kind, so the learned leaves after it run inline
    run = fan_after_a_chain.run()
    assert run.state == "completed", run.error
    here = threading.current_thread().name
    assert len([n for n in _leaves() if THREADS[n] == here]) >= FAN - (WORKERS * AHEAD + LEARN - 1)


def test_blocking_steps_still_overlap_among_inlined_trivial_ones(dbdir, trivial):
    MEET.reset()
    run = fan_and_meet.run()
    assert run.state == "completed", run.error  # an inlined meet would break the barrier
    assert all(r.state == "completed" for r in run.steps.values()) and len(run.steps) == FAN + 2
    meets = {THREADS["meet"], THREADS["meet-2"]}
    assert len(meets) == 2 and all(t.startswith("mlflowlet-step-") for t in meets)
    here = threading.current_thread().name
    assert any(THREADS[n] == here for n in _leaves())  # the leaves did run inline


def _records(run) -> dict:
    """What a run recorded, without uids, times and durations: comparable across runs."""
    names = {r.uid: name for name, r in run.steps.items()}
    steps = run.run.status.steps
    log = get_run_db().get_log(run.uid).decode()
    lines = [re.sub(r" in \d+\.\d+s", "", line[9:]) for line in log.splitlines()]
    lineage = [
        (names.get(row["producer_uid"]), row.get("output"), names[row["consumer_uid"]],
         row.get("param"))
        for row in get_run_db().list_lineage(pipeline_uid=run.uid)
    ]
    return {
        "state": run.state,
        "steps": {n: (e["state"], e["attempts"], e["error"]) for n, e in steps.items()},
        "results": {n: r.results for n, r in run.steps.items()},
        "outputs": {n: r.outputs for n, r in run.steps.items()},
        "lines": sorted(lines),
        "lineage": lineage,
        "line_pairs": _pairs(lines),
    }


def _pairs(lines: list[str]) -> dict[str, list[str]]:
    """Each step's progress lines, in the order written."""
    found: dict[str, list[str]] = {}
    for line in lines:
        name, _, note = line.removeprefix("step ").partition(": ")
        found.setdefault(name, []).append(note)
    return found


def test_inlined_steps_record_what_a_run_one_at_a_time_records(dbdir, trivial):
    first = fan.run()
    here = threading.current_thread().name
    ran_here = [n for n in _leaves() if THREADS[n] == here]
    assert ran_here
    log = get_run_db().get_log(first.uid).decode().splitlines()
    notes = [line[9:] for line in log]  # without the time of day
    for name in ran_here:  # as a step run alone: running, then its end, back to back
        at = notes.index(f"step {name}: running")
        assert notes[at + 1].startswith(f"step {name}: completed in "), notes[at - 2 : at + 3]
    inline, serial = _records(first), _records(fan.run(max_parallel=1))
    assert inline == serial
    assert inline["line_pairs"]["leaf"] == ["running", "completed"]
    assert inline["lineage"] and {row[2] for row in inline["lineage"]} == {"gather"}


def test_a_slow_inline_call_sends_one_probe_to_the_pool_and_the_rest_stays_inline(
    dbdir, trivial, monkeypatch
):
    note = Learner.note

    def slow_at_30(self, node, duration):  # leaf-30's call was slow; the others trivial
        note(self, node, 1e9 if node.name == "leaf-30" else duration)

    monkeypatch.setattr(Learner, "note", slow_at_30)
    run = fan.run()
    assert run.state == "completed", run.error
    here = threading.current_thread().name
    assert THREADS["leaf-30"] == here  # it ran inline, then re-taught
    after = [f"leaf-{i}" for i in range(31, FAN + 1)]
    pooled = [n for n in after if THREADS[n] != here]
    assert len(pooled) <= 1, pooled  # the probe only: its siblings wait for it, then inline


# -- the learner, unit by unit -------------------------------------------------------------
def _fn(context):
    return None


def _node(**spec):
    fields = dict(timeout=None, retries=0, container=None)
    fields.update(spec)
    return SimpleNamespace(map=None, hyper=None, spec=SimpleNamespace(**fields),
                           step=SimpleNamespace(fn=_fn))


def test_a_function_runs_inline_after_learn_trivial_calls_in_a_row():
    learner, node = Learner(), _node()
    for _ in range(LEARN - 1):
        learner.note(node, 0.0001)
    assert not learner.inline(node)
    learner.note(node, None)  # not timed: counts as slow
    for _ in range(LEARN - 1):
        learner.note(node, 0.0001)
    assert not learner.inline(node)
    learner.note(node, _scheduler.TRIVIAL)  # at the threshold: trivial
    assert learner.inline(node)


@pytest.mark.parametrize(
    "spec", [{"timeout": 30.0}, {"retries": 1}, {"container": object()}], ids=str
)
def test_steps_with_their_own_thread_or_retries_never_run_inline(spec):
    learner, node = Learner(), _node(**spec)
    for _ in range(LEARN + 2):
        learner.note(node, 0.0001)
    assert not learner.inline(node)
    assert learner.inline(_node())  # the same function without the option: inline
    mapped = _node()
    mapped.map = object()
    assert not learner.inline(mapped)
    swept = _node()
    swept.hyper = object()
    assert not learner.inline(swept)


def test_a_slow_call_sends_the_next_one_to_the_pool_alone_then_back_inline():
    learner, node = Learner(), _node()
    for _ in range(LEARN):
        learner.note(node, 0.0001)
    assert learner.inline(node) and not learner.held(node)
    learner.note(node, 1.0)  # slow: re-teaches
    assert not learner.inline(node) and not learner.held(node)  # the probe may go
    learner.sent(node)
    assert learner.held(node)  # the others wait for the probe
    learner.note(node, 0.0001)  # the probe was trivial: inline again
    assert learner.inline(node) and not learner.held(node)


def test_a_slow_probe_sends_the_function_back_to_the_pool_to_learn_anew():
    learner, node = Learner(), _node()
    for _ in range(LEARN):
        learner.note(node, 0.0001)
    learner.note(node, 1.0)
    learner.sent(node)
    learner.note(node, 1.0)  # the probe was slow too: the function is slow now
    assert not learner.inline(node) and not learner.held(node)
    learner.sent(node)
    assert not learner.held(node)  # no probation: its calls go to the pool at once
    for _ in range(LEARN - 1):
        learner.note(node, 0.0001)
    assert not learner.inline(node)
    learner.note(node, 0.0001)
    assert learner.inline(node)


def test_only_a_function_whose_last_call_was_slow_fills_the_pool_at_once():
    learner, node = Learner(), _node()
    assert not learner.slow(node)  # never called: the pool holds a few, to learn from
    learner.note(node, 1.0)
    assert learner.slow(node)  # slow: every ready step of it may go to the pool
    learner.note(node, 0.0001)
    assert not learner.slow(node)  # trivial again: learning
    for _ in range(LEARN):
        learner.note(node, 0.0001)
    learner.note(node, 1.0)  # slow after inline: on probation, not known slow
    assert not learner.slow(node)
    learner.note(node, 1.0)  # the probe slow too: learns anew, a few at a time
    assert not learner.slow(node) and not learner.inline(node)


def test_a_function_is_known_to_have_run_inline_after_exactly_learn_trivial_calls():
    # one trivial call short of LEARN, then slow: never inline, so its steps fill the pool
    short = Learner()
    for _ in range(LEARN - 1):
        short.note(_node(), 0.0001)
    short.note(_node(), 1.0)
    assert short.slow(_node())
    # LEARN trivial calls: it ran inline, so after a slow probe it learns a few at a time
    learned = Learner()
    for _ in range(LEARN):
        learned.note(_node(), 0.0001)
    learned.note(_node(), 1.0)
    learned.note(_node(), 1.0)
    assert not learned.slow(_node()) and not learned.inline(_node())


def test_a_learned_step_never_runs_inline_ahead_of_a_ready_step_of_another_kind(dbdir, trivial):
    # the fourth `waits` is known trivial, but `sets` is ready beside it: run inline, it held the
    # scheduler's thread while waiting for `sets`, which never got one
    SET.clear()
    run = waits_for_a_sibling.run()
    assert run.state == "completed", run.error
    here = threading.current_thread().name
    assert THREADS["waits-3"] == here and THREADS["waits-4"] != here  # learned, yet pooled
