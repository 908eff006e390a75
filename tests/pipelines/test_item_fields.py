"""Map item sub-fields: ``step.map(items=..., a=item["a"], b=item.b)`` and ``x=item``."""

import re

import pytest

from mlflowlet import collect, item, pipeline, step
from mlflowlet.errors import PipelineError


@step
def concat(a: str, b: str) -> str:
    return a + b


@step
def rows() -> list:
    return [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


@step
def both(row: dict, a: int) -> str:
    return f"{a}/{len(row)}"


@pipeline
def fields(n: int = 1):
    c = concat.map(items=[{"a": "1", "b": "2"}, {"a": "10", "b": "20"}], a=item["a"], b=item.b)
    r = rows()
    w = both.map(items=r.output, row=item, a=item.a, parallel=1)
    return {"concat": collect(c.output), "both": collect(w.output)}


def test_each_run_gets_the_elements_sub_fields(dbdir):
    run = fields.run()
    assert run.state == "completed"
    assert run.outputs == {"concat": ["12", "1020"], "both": ["1/2", "2/2"]}
    table = run.steps["concat"].status.iterations
    assert table[0][:4] == ["iter", "state", "param.a", "param.b"]
    assert [r[2:4] for r in table[1:]] == [["1", "2"], ["10", "20"]]
    producer = run.steps["rows"].uid
    assert sorted((e["producer_uid"], e["output"], e["consumer_param"]) for e in run.lineage()) == [
        (producer, "return", "a"), (producer, "return", "row")]  # the item feeds both


def test_the_graph_records_the_fields(dbdir):
    mapped = {n.name: n for n in fields.dag.nodes}["both"]
    assert mapped.map.describe()["fields"] == {"a": "a"} and mapped.map.item_param == "row"
    assert [e.param for e in fields.dag.in_edges("both") if e.kind == "items"] == ["row,a"]


@pytest.mark.parametrize(("items", "words"), [
    ([{"a": "1", "b": "2"}, {"b": "3"}], r"item 1 \(\{'b': '3'\}\) has no key 'a'"),
    (["ab"], r"item 0 \('ab'\) is not a dict"),
])
def test_an_element_without_the_field_fails_the_map_naming_it(dbdir, items, words):
    @pipeline
    def bad():
        concat.map(items=items, a=item["a"], b=item["b"])

    run = bad.run()
    assert run.state == "error" and run.steps["concat"].state == "error"
    assert re.search(words, run.run.status.steps["concat"]["error"])


def test_misused_items_are_refused(dbdir):
    with pytest.raises(PipelineError, match=r"one level of sub-fields"):
        item["a"]["b"]
    with pytest.raises(PipelineError, match=r"read-only"):
        item.a = 1

    @pipeline
    def not_mapped():
        concat(a=item["a"], b="x")

    with pytest.raises(PipelineError, match=r"gets `item`, which only a map has"):
        not_mapped.run()

    @pipeline
    def nothing():
        concat.map(items=[{"a": 1}], a="x", b="y")

    with pytest.raises(PipelineError, match=r"gives the item to no parameter"):
        nothing.run()

    @pipeline
    def twice():
        both.map(items=[{"a": 1}], item_param="row", a=item)

    with pytest.raises(PipelineError, match=r"gets the whole item twice"):
        twice.run()
