"""A map over a map (``items=collect(...)``) and conditions on the item, run locally (#13).

``collect(x.results)`` is each item's results as a dict; ``with condition(item.key == v)``
around a ``step.map`` is decided by each item: a false item is skipped (no run, no outputs),
and a collect of the map holds only the items that ran (as Argo aggregates its children).
"""

import pytest

from mlflowlet import collect, condition, item, pipeline, step
from mlflowlet.errors import PipelineError
from mlflowlet.pipelines import Pipeline


@step
def parity(num: int) -> dict:
    return {"num": num, "evenness": "even" if num % 2 == 0 else "odd"}


@step
def halve(num: int) -> int:
    return num // 2


@step
def echo(value: object) -> object:
    return value


@step
def flag() -> str:
    return "on"


@step
def total(values: list) -> int:
    return sum(values)


def _items(run, name):
    """``(iteration, params, results)`` of each recorded item of mapped step ``name``."""
    step_run = run.steps[name]
    found = step_run._db.list_runs(uid=step_run.uid, iter=True, sort=False)
    found = sorted((r for r in found if r["metadata"].get("iteration", 0) > 0),
                   key=lambda r: r["metadata"]["iteration"])
    return [(r["metadata"]["iteration"], r["spec"]["params"], r["status"]["results"])
            for r in found]


def _aggregation(numbers: list, test: object = "even") -> Pipeline:
    @pipeline(name="aggregation")
    def agg():
        checked = parity.map(items=numbers, item_param="num")
        with condition(item.evenness == test):
            halved = halve.map(items=collect(checked.results), num=item.num)
        shown = echo.map(items=collect(halved.output), item_param="value")
        return {"halves": collect(shown.output)}

    return agg


def test_a_map_over_every_result_reads_each_items_results_by_key(dbdir):
    @pipeline
    def every():
        checked = parity.map(items=[3, 4], item_param="num")
        halve.map(items=collect(checked.results), num=item.num)

    run = every.run()
    assert run.state == "completed"
    # each item of halve got one item's `num` result, an int, in item order
    assert [(it, p) for it, p, _r in _items(run, "halve")] == [(1, {"num": 3}), (2, {"num": 4})]
    assert [r["return"] for _i, _p, r in _items(run, "halve")] == [1, 2]
    assert "collect(parity.results)" in repr(every.dag.node("halve").map.items)


def test_an_item_condition_skips_the_false_items_and_collect_holds_the_items_that_ran(dbdir):
    run = _aggregation([1, 2, 3, 4]).run()
    assert run.state == "completed"
    # items 2 and 4 ran (iterations keep the item's position, as Argo numbers its children)
    assert [(it, p) for it, p, _r in _items(run, "halve")] == [(2, {"num": 2}), (4, {"num": 4})]
    assert run.steps["halve"].state == "completed"
    # the next map fans out over the results of the items that ran only: [1, 2]
    assert [p for _i, p, _r in _items(run, "echo")] == [{"value": 1}, {"value": 2}]
    assert run.outputs == {"halves": [1, 2]}


def test_every_item_skipped_completes_the_map_with_no_items_and_the_next_runs_over_none(dbdir):
    run = _aggregation([1, 3]).run()
    assert run.state == "completed"
    assert _items(run, "halve") == [] and run.steps["halve"].state == "completed"
    assert run.run.status.steps["echo"]["state"] == "completed"
    assert run.outputs == {"halves": []}


@pytest.mark.parametrize(("numbers", "test", "ran"), [
    ([2], "2", []),                 # a str that looks like a number is not the str "even"
    ([2, 3], "odd", [3]),
    ([4], "even", [4]),
])
def test_an_item_condition_compares_values_as_python_does(dbdir, numbers, test, ran):
    run = _aggregation(numbers, test).run()
    assert [p["num"] for _i, p, _r in _items(run, "halve")] == ran


def test_a_condition_on_an_int_field_against_a_str_is_false_not_an_error(dbdir):
    @pipeline
    def typed():
        checked = parity.map(items=[2], item_param="num")
        with condition(item.num == "2"):
            halve.map(items=collect(checked.results), num=item.num)

    run = typed.run()
    assert run.state == "completed" and _items(run, "halve") == []


def test_an_item_condition_and_an_outer_condition_must_both_hold(dbdir):
    @pipeline
    def both(want: str = "on"):
        f = flag()
        checked = parity.map(items=[1, 2], item_param="num")
        with condition(f.output == want):
            with condition(item.evenness == "odd"):
                halve.map(items=collect(checked.results), num=item.num)

    assert [p["num"] for _i, p, _r in _items(both.run(), "halve")] == [1]
    # the whole condition is decided per item (Argo evaluates a `when` reading {{item}} per
    # expanded item): every item is false, the map completes with none (as Argo's task group)
    off = both.run({"want": "off"})
    assert off.run.status.steps["halve"]["state"] == "completed" and _items(off, "halve") == []


def test_an_item_condition_on_a_missing_key_fails_the_item_naming_it(dbdir):
    @pipeline
    def missing():
        checked = parity.map(items=[1], item_param="num")
        with condition(item.colour == "red"):
            halve.map(items=collect(checked.results), num=item.num)

    run = missing.run()
    assert run.state == "error"
    assert "item['colour']" in run.steps["halve"].status.error
    assert "has no such key" in run.steps["halve"].status.error


def test_an_item_condition_works_on_a_map_over_a_literal_list(dbdir):
    @pipeline
    def literal():
        with condition(item.n > 1):
            halve.map(items=[{"n": 1}, {"n": 4}], num=item.n)

    assert [(it, p) for it, p, _r in _items(literal.run(), "halve")] == [(2, {"num": 4})]


def _trace(fn):
    return pipeline(fn).dag


@pytest.mark.parametrize(("body", "words"), [
    (lambda c: total(values=collect(c.results)),
     r"values=collect\(parity.results\): every result of each item is map items only"),
    (lambda c: echo.map(items=collect(c.results), item_param="value"),
     r"gives the whole item \(a dict of every result\) to 'value'; read the results it needs "
     r"by key"),
    (lambda c: echo.map(items=collect(c.outputs["x"]), item_param="value"),
     r"no declared output 'x'"),
    (lambda c: collect(c.outputs), r"collect one artifact at a time"),
])
def test_collecting_every_result_is_refused_where_it_has_no_exact_meaning(body, words):
    def bad():
        checked = parity.map(items=[1], item_param="num")
        body(checked)

    with pytest.raises(PipelineError, match=words):
        _trace(bad)


def test_an_item_condition_around_a_step_that_is_not_mapped_is_refused():
    def bad():
        with condition(item.evenness == "even"):
            halve(num=2)

    with pytest.raises(PipelineError, match=r"step 'halve' is inside `with condition\(item\["
                                            r"'evenness'\] == 'even'\)`, which tests the item "
                                            r"of a map: only a step.map\(...\)"):
        _trace(bad)


def test_an_item_condition_on_a_map_nested_in_a_mapped_sub_pipeline_is_refused():
    @pipeline
    def body(n: int):
        with condition(item.evenness == "even"):
            halve.map(items=[{"evenness": "even", "num": n}], num=item.num)

    def outer():
        body.map(items=[1, 2], n=item)

    with pytest.raises(PipelineError, match=r"a condition on the item of a map nested in a "
                                            r"mapped sub-pipeline is not supported yet"):
        _trace(outer)


def test_a_sub_pipeline_map_over_collected_results_is_refused():
    @pipeline
    def body(n: int):
        halve(num=n)

    def outer():
        checked = parity.map(items=[1], item_param="num")
        body.map(items=collect(checked.results["num"]), n=item)

    with pytest.raises(PipelineError, match=r"a sub-pipeline map over collected results is not "
                                            r"supported yet"):
        _trace(outer)


def _item_tested():
    """Halve each item of a map over every result of another whose evenness is even."""
    checked = parity.map(items=[1], item_param="num")
    with condition(item.evenness == "even"):
        halve.map(items=collect(checked.results), num=item.num)


def test_the_item_in_a_condition_describes_itself_for_compilers():
    node = _trace(_item_tested).node("halve")
    assert node.condition.describe() == {
        "op": "==", "left": {"kind": "item", "key": "evenness"},
        "right": {"kind": "value", "value": "even"}}
    assert node.map.describe()["items"] == {"kind": "collect", "node": "parity", "result": ""}
    edges = [(e.source, e.kind, e.param) for e in _trace(_item_tested).edges]
    assert ("parity", "collect", "num") in edges


def test_returning_every_result_of_each_item_is_refused():
    def bad():
        checked = parity.map(items=[1], item_param="num")
        return {"all": collect(checked.results)}

    with pytest.raises(PipelineError, match=r"is collect\(parity.results\): every result of each "
                                            r"item is map items only; return one result of each"):
        _trace(bad)


def test_the_live_page_names_the_item_and_every_result_collected():
    from mlflowlet.server._live import operand_text

    node = _trace(_item_tested).node("halve")
    assert operand_text(node.condition.describe()) == "item['evenness'] == \"even\""
    assert operand_text(node.map.describe()["items"]) == "collect(parity.results)"


@step
def fails() -> None:
    raise RuntimeError("boom")


def test_an_item_tested_map_keeps_its_status_ordering(dbdir):
    @pipeline
    def on_failure():
        broken = fails()
        with condition(item.n > 1):
            halve.map(items=[{"n": 1}, {"n": 4}], num=item.n).after(broken, on="failure")

    run = on_failure.run()
    # it runs because `fails` failed (on="failure"), each item deciding its own condition
    assert run.steps["halve"].state == "completed"
    assert [(it, p) for it, p, _r in _items(run, "halve")] == [(2, {"num": 4})]

    @pipeline
    def on_success():
        broken = fails()
        with condition(item.n > 1):
            halve.map(items=[{"n": 4}], num=item.n).after(broken, on="success")

    skipped = on_success.run()  # skipped as a whole by its gate, before any item decides
    assert skipped.run.status.steps["halve"]["state"] == "skipped"
    assert skipped.run.status.steps["halve"]["reason"] == "step 'fails' did not succeed (error)"


def test_each_collected_item_feeds_an_item_tested_map_once_in_the_lineage(dbdir):
    run = _aggregation([1, 2, 3, 4]).run()
    rows = [r for r in run.lineage() if r["consumer_param"] == "num"]
    # parity's 4 items fed halve's `num` (their `num` result), one row each, not one per item
    # of halve that ran (2): the items it fanned out over
    assert sorted((r["producer_iter"], r["output"]) for r in rows) == [
        (1, "num"), (2, "num"), (3, "num"), (4, "num")]
    assert {r["producer_uid"] for r in rows} == {run.steps["parity"].uid}


def test_drawings_name_every_result_collected():
    text = _aggregation([1]).dag.to_mermaid()
    assert "|\"[results → num]\"|" in text and "|\"[return → value]\"|" in text


def test_a_cached_step_run_per_item_says_it_is_not_looked_up(dbdir):
    # an item-tested map and a mapped sub-pipeline's step run item by item, not through the
    # cache: said once per run, never silently (a plain map over the same items is cached)
    import warnings

    from mlflowlet.errors import MlflowletWarning

    cached = halve.with_options(cache=True)

    @pipeline
    def tested():
        checked = parity.map(items=[1, 2], item_param="num")
        with condition(item.evenness == "even"):
            cached.map(items=collect(checked.results), num=item.num)

    @pipeline
    def body(n: int):
        cached(num=n)

    @pipeline
    def looped():
        body.map(items=[4, 6], n=item)

    @pipeline
    def untested():
        checked = parity.map(items=[1, 2], item_param="num")
        cached.map(items=collect(checked.results), num=item.num)

    for pipe in (tested, looped):
        with pytest.warns(MlflowletWarning, match="step 'halve' asks for cache=True but runs "
                                                  "per item"):
            assert pipe.run().state == "completed"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MlflowletWarning)
        assert untested.run().state == "completed"
