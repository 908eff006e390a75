import json

import networkx as nx
import pytest

from mlflowlet import DataItem, collect, condition, pipeline, step
from mlflowlet.errors import CycleError, PipelineError
from mlflowlet.pipelines import Edge, PipelineGraph


@step(outputs=["data"])
def make(context, rows: int = 3):
    context.log_artifact("data", body=b"1,2,3")


@step
def count(context, data: DataItem) -> int:
    return 3


@step
def total(context, data: DataItem) -> int:
    return 6


@step
def join(context, n: int, s: int) -> str:
    return f"{n}:{s}"


@step
def shards(context) -> list:
    return [1, 2]


@step
def square(context, x: int) -> int:
    return x * x


@step
def add(context, values: list) -> int:
    return sum(values)


@step(image="img:1", resources={"cpu": "500m", "memory": "1Gi"}, retries=1, retry_delay=2.0,
      timeout=60, cache=False, labels={"tier": "gold"})
def deploy(context, n: int, name: str = "svc"):
    pass


@step
def notify(context, state: str, channel: str = "ops"):
    pass


@pipeline(on_exit=notify, image="base:1")
def diamond(rows: int = 3, go: bool = True):
    m = make(rows=rows)
    c = count(data=m.outputs["data"])
    t = total(data=m.outputs["data"])
    j = join(n=c.results["return"], s=t.results["return"])
    with condition((c.results["return"] >= 2) & (go == True)):  # noqa: E712
        deploy(n=c.results["return"]).after(j)


@pipeline
def fan():
    s = shards()
    sq = square.map(items=s.results["return"], item_param="x", parallel=4)
    add(values=collect(sq.results["return"]))


def test_nodes_come_in_topological_trace_order():
    assert [n.name for n in diamond.dag.nodes] == ["make", "count", "total", "join", "deploy"]
    assert diamond.dag.roots() == ["make"]
    assert set(diamond.dag.upstream("join")) == {"count", "total"}
    assert set(diamond.dag.downstream("make")) == {"count", "total"}


def test_edges_are_labelled_with_output_and_parameter():
    edges = {(e.source, e.target, e.kind, e.output, e.param) for e in diamond.dag.edges}
    assert ("make", "count", "artifact", "data", "data") in edges
    assert ("count", "join", "result", "return", "n") in edges
    assert ("count", "deploy", "condition", "return", "") in edges
    assert ("join", "deploy", "order", "", "") in edges
    assert diamond.dag.edges_between("count", "deploy") == [
        Edge("count", "deploy", "result", "return", "n"),
        Edge("count", "deploy", "condition", "return", "")]


def test_map_and_collect_edges():
    kinds = {(e.source, e.target): (e.kind, e.output, e.param, e.ref) for e in fan.dag.edges}
    assert kinds[("shards", "square")] == ("items", "return", "x", "")
    assert kinds[("square", "add")] == ("collect", "return", "values", "result")
    node = fan.dag.node("square")
    assert node.map.item_param == "x" and node.map.parallel == 4
    assert fan.describe()["nodes"][1]["map"] == {
        "items": {"kind": "result", "node": "shards", "result": "return"},
        "item_param": "x", "parallel": 4, "fields": {}}


def test_node_spec_carries_everything_a_compiler_needs():
    node = diamond.dag.node("deploy")
    spec = node.spec
    assert spec.handler == f"{__name__}:deploy"
    assert (spec.image, dict(spec.resources), spec.retries, spec.retry_delay, spec.timeout,
            spec.cache, dict(spec.labels)) == ("img:1", {"cpu": "500m", "memory": "1Gi"}, 1, 2.0,
                                               60.0, False, {"tier": "gold"})
    assert [(p.name, p.type, p.required) for p in spec.params] == [
        ("n", "int", True), ("name", "str", False)]
    assert node.after == ("join",)
    assert node.condition.describe() == {
        "op": "and",
        "left": {"op": ">=", "left": {"kind": "result", "node": "count", "result": "return"},
                 "right": {"kind": "value", "value": 2}},
        "right": {"op": "==", "left": {"kind": "param", "name": "go"},
                  "right": {"kind": "value", "value": True}}}


def test_describe_is_plain_json_with_params_and_exit_handler():
    data = diamond.describe()
    assert json.loads(json.dumps(data)) == data
    assert data["image"] == "base:1" and data["name"] == "diamond"
    assert data["exit_handler"]["name"] == "notify" and data["exit_handler"]["exit_handler"]
    assert {e["kind"] for e in data["edges"]} == {"artifact", "result", "condition", "order"}


def test_two_traces_describe_identically():
    again = pipeline(on_exit=notify, image="base:1")(diamond.fn)
    assert json.dumps(again.describe(), sort_keys=True) == json.dumps(diamond.describe(),
                                                                      sort_keys=True)


def test_graph_property_is_a_networkx_copy():
    g = diamond.graph
    assert isinstance(g, nx.DiGraph) and set(g.nodes) == {n.name for n in diamond.dag.nodes}
    assert g.edges["make", "count"]["edges"][0].kind == "artifact"
    g.remove_node("make")
    assert "make" in diamond.graph and len(diamond.dag) == 5


def test_cycle_through_after_names_the_cycle():
    @pipeline
    def loop():
        a = join(n=1, s=2)
        b = join(n=a.results["return"], s=1)
        c = join(n=b.results["return"], s=1)
        a.after(c)

    with pytest.raises(CycleError) as err:
        loop.validate()
    assert sorted(err.value.cycle) == ["join", "join-2", "join-3"]
    assert "join" in str(err.value) and "->" in str(err.value)


def test_unknown_node_lookup_lists_the_nodes():
    with pytest.raises(PipelineError, match=r"no step 'nope'.*'count'"):
        diamond.dag.node("nope")
    assert "join" in diamond.dag and "nope" not in diamond.dag
    assert isinstance(diamond.dag, PipelineGraph)


def test_mermaid_and_dot_pictures():
    mermaid = diamond.to_mermaid()
    assert mermaid.startswith("flowchart TD") and '["make"]' in mermaid
    assert "-->|\"data\"|" in mermaid and "-.->" in mermaid and "on exit: notify" in mermaid
    dot = fan.to_dot()
    assert dot.startswith('digraph "fan"') and '"square" -> "add"' in dot
    assert "square (map)" in dot
