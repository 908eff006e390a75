"""Maps over a sub-pipeline (``body.map(items=..., x=item.a)``) and nested maps, run locally."""

import threading

import pytest

from mlflowlet import collect, condition, get_run_db, item, pipeline, step
from mlflowlet.errors import PipelineError


@step
def concat(a: str, b: str) -> str:
    print(a + b)
    return a + b


@step
def shout(text: str) -> str:
    print(text.upper())
    return text.upper()


@pipeline
def body(a: str, b: str):
    shout(text=concat(a=a, b=b).output)


@pipeline
def static(greeting: str = "hi"):
    first = shout(text=greeting)
    body.map(items=[{"a": "1", "b": "2"}, {"a": "10", "b": "20"}], a=item.a, b=item.b).after(first)


def _items(run, name):
    db = run._db
    found = db.list_runs(uid=run.steps[name].uid, iter=True, sort=False)
    ordered = sorted(
        (r for r in found if r["metadata"]["iteration"] > 0),
        key=lambda r: r["metadata"]["iteration"],
    )
    return [
        (r["metadata"]["iteration"], r["status"].get("results", {}).get("return")) for r in ordered
    ]


def test_each_item_runs_the_whole_body(dbdir):
    run = static.run()
    assert run.state == "completed"
    assert {n: e["state"] for n, e in run.run.status.steps.items()} == dict.fromkeys(
        ["shout", "concat", "shout-2"], "completed"
    )
    assert _items(run, "concat") == [(1, "12"), (2, "1020")]
    assert _items(run, "shout-2") == [(1, "12"), (2, "1020")]  # each item's own concat
    assert sorted(run.steps["shout-2"].logs().split()) == ["1020", "12"]
    graph = static.dag
    assert graph.node("concat").map.loop is graph.node("shout-2").map.loop
    assert graph.upstream("concat") == ("shout",)  # .after(first): the body's first step only
    assert graph.upstream("shout-2") == ("concat",)


GATE = threading.Event()


@step
def first_of(x: str) -> str:
    if x == "slow" and not GATE.wait(timeout=60):  # bounded: fails rather than hangs
        raise RuntimeError("the fast item's second step never ran")
    return x


@step
def second_of(x: str) -> str:
    if x == "fast":
        GATE.set()
    return x


@pipeline
def gated(x: str):
    second_of(x=first_of(x=x).output)


@pipeline
def no_barrier():
    gated.map(items=["slow", "fast"], x=item, parallel=2)


def test_an_items_second_step_waits_only_for_its_own_first_step(dbdir):
    # the slow item's first step waits until the fast item's *second* step ran: with a barrier
    # between the body's steps (every first step before any second one) it never would
    GATE.clear()
    run = no_barrier.run()
    assert run.state == "completed", run.run.status.error
    assert _items(run, "second_of") == [(1, "slow"), (2, "fast")]


BARRIER = threading.Barrier(2)


@step
def together(x: str) -> str:
    BARRIER.wait(timeout=60)  # both items at once, or a BrokenBarrierError
    return x


@pipeline
def pairwise(x: str):
    together(x=x)


@pipeline
def two_at_once():
    pairwise.map(items=["a", "b"], x=item, parallel=2)


def test_parallel_runs_that_many_items_at_once(dbdir):
    BARRIER.reset()
    run = two_at_once.run(max_parallel=1)  # the map's own parallel=2 wins
    assert run.state == "completed", run.run.status.steps


@step
def pair(outer: str, inner: str) -> str:
    return outer + inner


@pipeline
def inner_body(outer: str, letters: list[str]):
    loud = shout(text=outer)
    pair.map(items=letters, inner=item, outer=loud.output)


@pipeline
def nested(letters: list[str] = ["x", "y"]):  # noqa: B006
    inner_body.map(items=["a", "b", "c"], outer=item, letters=letters, parallel=2)


def test_a_nested_map_runs_inside_each_outer_item(dbdir):
    run = nested.run()
    assert run.state == "completed"
    assert _items(run, "shout") == [(1, "A"), (2, "B"), (3, "C")]
    want = [o + i for o in "ABC" for i in "xy"]  # outer-major
    assert _items(run, "pair") == list(enumerate(want, start=1))


@step
def picky(a: str) -> str:
    if a == "bad":
        raise ValueError("bad item")
    return a


@pipeline
def picky_body(a: str):
    shout(text=picky(a=a).output)


@pipeline
def one_bad():
    picky_body.map(items=["ok", "bad"], a=item)


def test_a_failed_item_skips_the_rest_of_its_own_body_only(dbdir):
    run = one_bad.run()
    assert run.state == "error"
    states = {n: e["state"] for n, e in run.run.status.steps.items()}
    assert states == {"picky": "error", "shout": "completed"}
    assert _items(run, "shout") == [(1, "OK")]  # the bad item's shout never ran
    assert "bad item" in run.run.status.steps["picky"]["error"]


def test_loop_items_from_a_result_and_outside_results_reach_the_body(dbdir):
    @step
    def rows() -> list:
        return [{"a": "p"}, {"a": "q"}]

    @step
    def suffix() -> str:
        return "!"

    @pipeline
    def ends(a: str, end: str):
        shout(text=concat(a=a, b=end).output)

    @pipeline
    def over():
        ends.map(items=rows().output, a=item.a, end=suffix().output)

    run = over.run()
    assert _items(run, "shout") == [(1, "P!"), (2, "Q!")]
    rows_uid = run.steps["rows"].uid
    got = {
        (r["consumer_param"], r["output"]) for r in run.lineage() if r["producer_uid"] == rows_uid
    }
    assert got == {("a", "return")}  # the item's lineage: the list it came from


def test_a_map_over_no_items_completes_its_body(dbdir):
    @pipeline
    def empty(rows: list[str] = []):  # noqa: B006
        body.map(items=rows, a=item, b="x")

    run = empty.run()
    assert run.state == "completed"
    assert {n: e["state"] for n, e in run.run.status.steps.items()} == {
        "concat": "completed",
        "shout": "completed",
    }


def test_a_nested_step_reading_the_outer_item_is_refused():
    @pipeline
    def reads_outer(outer: str):
        pair.map(items=["x"], inner=item, outer=outer)

    with pytest.raises(
        PipelineError,
        match=r"step 'pair' gets outer=item, the item of an "
        r"enclosing map",
    ):

        @pipeline
        def bad():
            reads_outer.map(items=["a"], outer=item)

        _ = bad.dag  # traced on first use


def test_a_sub_pipeline_map_needs_an_item_and_a_pipeline():
    with pytest.raises(
        PipelineError,
        match=r"body.map\(\) maps a sub-pipeline inside a "
        r"@pipeline function only",
    ):
        body.map(items=[{"a": "1", "b": "2"}], a=item.a, b=item.b)
    with pytest.raises(PipelineError, match=r"gives the item to no parameter"):

        @pipeline
        def no_item():
            body.map(items=["1"], a="1", b="2")

        _ = no_item.dag
    with pytest.raises(PipelineError, match=r"has no parameter\(s\) \['c'\]"):

        @pipeline
        def unknown():
            body.map(items=["1"], a=item, b="2", c=3)

        _ = unknown.dag


def test_the_loop_is_recorded_in_the_described_graph(dbdir):
    described = {n["name"]: n for n in static.dag.describe()["nodes"]}
    assert described["concat"]["map"]["loop"] == ["body-loop-1"]
    assert described["concat"]["map"]["fields"] == {"a": "a", "b": "b"}
    assert get_run_db is not None


@step
def count(values: list) -> int:
    return len(values)


def test_collecting_a_map_nested_in_a_sub_pipeline_map_is_refused():
    @pipeline
    def collects(tag: str, letters: list[str]):
        count(values=collect(shout.map(items=letters, text=item).output))

    @pipeline
    def outer():
        collects.map(items=["a"], tag=item, letters=["x"])

    with pytest.raises(PipelineError, match=r"collects .* of a map inside a mapped sub-pipeline"):
        _ = outer.dag


@step
def pool_threads(x: str) -> int:
    return sum(t.name.startswith("mlflowlet-iter") for t in threading.enumerate())


def test_parallel_above_the_item_count_starts_a_thread_per_item_only(dbdir):
    @pipeline
    def wide():
        pool_threads.map(items=["a", "b"], x=item, parallel=1000)

    run = wide.run()  # 10**6 once failed: a thread per parallel slot, "can't start new thread"
    assert run.state == "completed"
    counts = [n for _i, n in _items(run, "pool_threads")]
    assert len(counts) == 2 and all(1 <= n <= 2 for n in counts), counts


@pytest.mark.parametrize("mapped", [body, shout])
def test_parallel_true_is_refused(dbdir, mapped):
    with pytest.raises(PipelineError, match="parallel must be a positive integer, got True"):

        @pipeline
        def flagged():
            if mapped is body:
                body.map(items=[{"a": "1", "b": "2"}], a=item.a, b=item.b, parallel=True)
            else:
                shout.map(items=["x"], text=item, parallel=True)

        flagged.run()


@step
def tidy(a: str) -> str:
    return a


@pipeline
def handled_body(a: str):
    p = picky(a=a)
    tidy(a=a).after(p, on="failure")
    tidy.with_options(name="always")(a=a).after(p, on="done")
    tidy.with_options(name="after_ok")(a=a).after(p, on="success")


@pipeline
def handled():
    handled_body.map(items=["ok", "bad"], a=item)


def test_a_body_step_after_another_on_its_status_runs_by_that_items_status(dbdir):
    run = handled.run()
    assert _items(run, "picky") == [(1, "ok"), (2, None)]  # the second item failed
    assert [r for _i, r in _items(run, "tidy")] == ["bad"]  # on='failure': the failed item only
    assert [r for _i, r in _items(run, "always")] == ["ok", "bad"]  # on='done': every item
    assert [r for _i, r in _items(run, "after_ok")] == ["ok"]



@pipeline
def cleanup_body(a: str):
    tidy(a=a).after(picky(a=a), on="failure")  # the handler is the body's only leaf


@pipeline
def cleaned():
    cleanup_body.map(items=["ok", "bad"], a=item)


def test_a_failure_every_item_body_handles_completes_the_pipeline_by_the_leaf_rule(dbdir):
    run = cleaned.run()  # Argo runs each item's body as a DAG: the 'bad' one ends in its handler
    assert run.state == "completed", run.error
    assert _items(run, "picky") == [(1, "ok"), (2, None)]
    assert [r for _i, r in _items(run, "tidy")] == ["bad"]
    assert handled.run().state == "error"  # there the 'bad' item's on-success leaf is skipped


@step
def parity(x: int) -> str:
    return "even" if x % 2 == 0 else "odd"


@step
def halve(x: int) -> int:
    return x // 2


@pipeline
def even_only(x: int, limit: int):
    p = parity(x=x)
    with condition(p.output == "even"):  # decided by each item's own parity
        h = halve(x=x)
        with condition(h.output < limit):  # and the same item's halve
            shout(text=p.output)


@pipeline
def evens(xs: list = [1, 2, 3, 4, 6], limit: int = 3):  # noqa: B006
    even_only.map(items=xs, x=item, limit=limit)


def test_a_condition_in_the_body_is_decided_by_each_item(dbdir):
    run = evens.run()
    assert run.state == "completed", run.error
    assert _items(run, "halve") == [(2, 1), (4, 2), (5, 3)]  # items 2, 4 and 6
    assert _items(run, "shout") == [(2, "EVEN"), (4, "EVEN")]  # 6 // 2 is not < 3
    run = evens.run(xs=[1, 3])
    assert run.state == "completed", run.error
    assert run.steps["halve"].state == run.steps["shout"].state == "skipped"


def test_a_condition_reading_a_step_of_another_map_is_still_refused():
    with pytest.raises(PipelineError, match="belongs to a mapped step; it has no one value"):

        @pipeline
        def bad():
            p = parity.map(items=[1, 2], item_param="x")
            with condition(p.output == "even"):
                shout(text="x")

        _ = bad.dag  # traced on first use


@pytest.mark.parametrize("test", ["x > 1", "x <= 1", "big < x", "x > big", "x == 2", "x != big"])
def test_a_condition_on_the_bodys_item_parameter_is_refused_naming_it_and_the_fix(test):
    # a body parameter bound to `item` has no per-item value a condition can read: refused
    # with one clear line, not a bare TypeError or a condition on False
    def body_fn(x: int, big: int):
        with condition(eval(test, {}, {"x": x, "big": big})):
            shout(text="big")

    body_fn.__qualname__ = body_fn.__name__ = "item_test_body"
    sub = pipeline(body_fn)

    @pipeline
    def outer(xs: list = [1, 2], big: int = 1):  # noqa: B006
        sub.map(items=xs, x=item, big=big)

    with pytest.raises(PipelineError, match=r"condition on a mapped sub-pipeline's parameter bound "
                                            r"to the item .*compute the test in a body step"):
        _ = outer.dag


BODY_CALLS: list[tuple[str, int]] = []


@step(retries=1)
def flaky_upper(context, text: str) -> str:
    BODY_CALLS.append((text, int(context.labels["attempt"])))
    context.log_metric("attempt", int(context.labels["attempt"]))
    if text == "bad" and sum(1 for t, _ in BODY_CALLS if t == "bad") == 1:
        raise RuntimeError("first attempt of bad fails")
    return text.upper()


@pipeline
def retrying_body(a: str):
    flaky_upper(text=a)


@pipeline
def retrying(words: list = ["ok", "bad"]):  # noqa: B006 - a pipeline default, never mutated
    retrying_body.map(items=words, a=item)


def test_a_retried_body_step_keeps_its_failed_attempt_as_its_own_run(dbdir):
    BODY_CALLS.clear()
    run = retrying.run()
    assert run.state == "completed", run.error
    assert sorted(BODY_CALLS) == [("bad", 1), ("bad", 2), ("ok", 1)]
    assert _items(run, "flaky_upper") == [(1, "OK"), (2, "BAD")]
    uid = run.steps["flaky_upper"].uid
    kept = [r for r in run._db.list_runs(name="flaky_upper")
            if r["metadata"].get("annotations", {}).get("item_uid") == uid]
    assert len(kept) == 1
    meta, status = kept[0]["metadata"], kept[0]["status"]
    assert (meta["annotations"]["item_iteration"], meta["labels"]["attempt"]) == ("2", "1")
    assert status["state"] == "error" and "first attempt of bad fails" in status["error"]
    item2 = run._db.read_run(uid, iter=2)
    assert item2["metadata"]["labels"]["retry_of"] == meta["uid"]
    # the failed attempt's metric history went with it; the item keeps its last attempt's
    assert [m["value"] for m in run._db.get_metrics(meta["uid"])] == [1]
    assert [m["value"] for m in run._db.get_metrics(uid, iter=2)] == [2]
