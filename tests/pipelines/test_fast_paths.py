"""Issue 18's fast paths keep records exact: the pipeline run's graph dumped and encoded once
per DAG, hits and skipped steps stored in one batched pass, finished steps taken in batches."""

from __future__ import annotations

import json
import math
from concurrent.futures import Future

import pytest

from mlflowlet import get_run_db, pipeline, step
from mlflowlet.db._json import dumps, dumps_run, share
from mlflowlet.pipelines._inbox import Inbox


@step
def source(context, rows: tuple = (1, 2), opts: dict | None = None) -> int:
    return sum(rows)


@step
def sink(context, n: int = 0) -> int:
    return n + 1


@pipeline(name="fast-paths")
def shaped(rows: tuple = (3, 4)):
    sink(n=source(rows=rows, opts={"nested": (1, "a")}).output)


def _full_dump(run):
    """The run as ``to_dict`` gave it before the graph was shared: a plain JSON-mode dump."""
    data = run.model_dump(mode="json")
    data["spec"]["secret_sources"] = []
    return data


def test_the_pipeline_record_holds_the_graph_a_full_dump_gives(dbdir):
    run = shaped.run()
    assert run.state == "completed", run.error
    record = run.run.to_dict()
    full = _full_dump(run.run)
    assert record == full and list(record["spec"]) == list(full["spec"])
    assert record["spec"]["graph"] == json.loads(json.dumps(shaped.dag.describe()))
    stored = get_run_db().read_run(run.uid)
    assert stored["spec"]["graph"] == full["spec"]["graph"]
    assert stored["spec"]["source"] == full["spec"]["source"]
    assert stored["status"]["steps"].keys() == {"source", "sink"}


def test_a_graph_replaced_in_memory_is_dumped_as_it_now_is(dbdir):
    run = shaped.run().run
    assert run.spec.model_extra is not None
    run.spec.model_extra["graph"] = {"nodes": ["other"]}  # no longer the shared DAG's
    assert run.to_dict()["spec"]["graph"] == {"nodes": ["other"]}
    get_run_db().store_run(run.to_dict(), run.uid, run.metadata.project)
    assert get_run_db().read_run(run.uid)["spec"]["graph"] == {"nodes": ["other"]}


def test_a_copied_or_unpickled_run_dumps_its_own_graph_as_it_now_is(dbdir):
    import copy
    import pickle

    run = shaped.run().run
    for other in (copy.deepcopy(run), pickle.loads(pickle.dumps(run))):
        assert other.spec.model_extra is not None
        other.spec.model_extra["graph"]["name"] = "changed in place"
        assert other.to_dict()["spec"]["graph"]["name"] == "changed in place"
    assert run.to_dict()["spec"]["graph"]["name"] == "fast-paths"


@pytest.mark.parametrize("graph_nan", [False, True])
def test_dumps_run_writes_the_text_dumps_writes(graph_nan):
    graph = share({"nodes": [{"name": "a", "default": math.nan if graph_nan else 1.5}],
                   "tag": {"$float": "x"}})
    record = {"metadata": {"uid": "u"}, "spec": {"params": {"p": math.inf}, "graph": graph,
                                                 "source": "m:f"}}
    assert dumps_run(record) == dumps(record)
    copy = {**record, "spec": {**record["spec"], "graph": json.loads(json.dumps(graph))}}
    assert dumps_run(copy) == dumps(copy)  # an equal graph, not the shared one: dumped anew


# -- the scheduler's inbox ------------------------------------------------------------------
class _Pool:
    def __init__(self, queued: bool) -> None:
        self.queued = queued

    def has_queued(self) -> bool:
        return self.queued


class _Node:
    def __init__(self, name: str) -> None:
        self.name = name


def _done(exc: BaseException | None = None) -> Future:
    fut: Future = Future()
    if exc is None:
        fut.set_result("run")
    else:
        fut.set_exception(exc)
    return fut


DOWN = {"a": ["join"], "b": ["join"], "c": ["join"], "join": []}


def test_the_inbox_wakes_the_scheduler_only_when_it_has_work():
    waiting = {"a": 0, "b": 0, "c": 0, "join": 3}
    pool = _Pool(queued=True)
    inbox = Inbox(pool, waiting, DOWN.__getitem__)
    inbox.report(_Node("a"), "call-a", _done())
    inbox.report(_Node("b"), "call-b", _done())
    assert not inbox._wake.is_set()  # the pool still runs its queue and join is not ready
    inbox.report(_Node("c"), "call-c", _done())
    assert inbox._wake.is_set()  # every upstream of join has ended: join may run
    assert [(n.name, c) for n, c, _ in inbox.take(0)] == [("a", "call-a"), ("b", "call-b"),
                                                          ("c", "call-c")]
    assert inbox.take(0) == [] and not inbox._wake.is_set()


def test_the_inbox_wakes_the_scheduler_when_the_pool_runs_dry_or_a_step_raised():
    waiting = {"a": 0, "b": 0, "c": 0, "join": 3}
    pool = _Pool(queued=True)
    inbox = Inbox(pool, waiting, DOWN.__getitem__)
    inbox.report(_Node("a"), "call", _done(RuntimeError("boom")))
    assert inbox._wake.is_set()
    assert len(inbox.take(0)) == 1
    waiting["join"] = 2  # the scheduler counted a's end
    pool.queued = False
    inbox.report(_Node("b"), "call", _done())
    assert inbox._wake.is_set()  # nothing queued: the scheduler must feed the pool or finish
    inbox.take(0)
    waiting["join"] = 1
    pool.queued = True
    inbox.report(_Node("c"), "call", _done())
    assert inbox._wake.is_set()  # counts of taken steps are not counted twice: join is ready
