"""The traced graph's edges of every kind, its drawings (Graphviz, Mermaid) and descriptions."""

from __future__ import annotations

import pytest

from mlflowlet.pipelines import collect, condition, pipeline, step
from mlflowlet.pipelines.graph import Edge, PipelineGraph


@step
def items(k: int = 2) -> dict:
    return {"items": list(range(k)), "ok": True}


@step
def sq(x: int) -> dict:
    return {"sq": x * x}


@step
def total(values: list, ok: bool = False) -> dict:
    return {"n": len(values)}


@step
def report(state: str = "") -> dict:
    return {"final": state}


def _views():
    """A pipeline with every edge kind: items (map), result, collect, condition, order.

    Traced anew by each test (``pipe.dag`` caches its graph on first use).
    """

    @pipeline(on_exit=report)
    def views(k: int = 2):
        it = items(k=k)
        s = sq.map(items=it.results["items"], item_param="x")
        with condition(it.results["ok"] == True):  # noqa: E712
            t = total(values=collect(s.results["sq"]), ok=it.results["ok"])
            sq.with_options(name="gated")(x=1)
        total.with_options(name="again")(values=[1]).after(t)
        items.with_hyper_params({"k": [1, 2]})()

    return views


def test_edges_of_every_kind_name_source_target_output_and_parameter():
    dag = _views().dag
    assert list(dag.edges) == [
        Edge("items", "sq", "items", "items", "x"),
        Edge("sq", "total", "collect", "sq", "values", "result"),
        Edge("items", "total", "result", "ok", "ok"),
        Edge("items", "total", "condition", "ok"),
        Edge("items", "gated", "condition", "ok"),
        Edge("total", "again", "order"),
    ]
    assert dag.edges_between("items", "total") == [dag.edges[2], dag.edges[3]]
    assert dag.edges_between("total", "items") == []
    assert dag.in_edges("total") == [dag.edges[1], dag.edges[2], dag.edges[3]]
    assert dag.out_edges("items") == [dag.edges[0], dag.edges[2], dag.edges[3], dag.edges[4]]
    assert dag.downstream("items") == ("sq", "total", "gated")
    assert dag.upstream("total") == ("sq", "items")
    assert [e.carries_data for e in dag.edges] == [True] * 5 + [False]


def test_to_dot_draws_labels_dashed_control_edges_and_the_exit_handler():
    assert _views().dag.to_dot() == "\n".join([
        'digraph "views" {',
        "    rankdir=TB;",
        '    "items" [label="items"];',
        '    "sq" [label="sq (map)"];',
        '    "total" [label="total"];',
        '    "gated" [label="gated"];',
        '    "again" [label="again"];',
        '    "items-2" [label="items-2 (hyper)"];',
        '    "items" -> "sq" [label="items → x"];',
        '    "items" -> "total" [label="ok, if ok"];',
        '    "items" -> "gated" [label="if ok", style=dashed];',
        '    "sq" -> "total" [label="[sq → values]"];',
        '    "total" -> "again" [style=dashed];',
        '    "report" [label="on exit: report", shape=box];',
        "}",
    ]) + "\n"


def test_to_mermaid_draws_the_same_graph():
    assert _views().dag.to_mermaid() == "\n".join([
        "flowchart TD",
        '    n0["items"]',
        '    n1["sq (map)"]',
        '    n2["total"]',
        '    n3["gated"]',
        '    n4["again"]',
        '    n5["items-2 (hyper)"]',
        "    n0 -->|\"items → x\"| n1",
        "    n0 -->|\"ok, if ok\"| n2",
        "    n0 -.->|\"if ok\"| n3",
        "    n1 -->|\"[sq → values]\"| n2",
        "    n2 -.-> n4",
        '    exit(["on exit: report"])',
    ]) + "\n"


def test_describe_keeps_map_hyper_and_exit_handler():
    described = _views().dag.describe()
    nodes = {n["name"]: n for n in described["nodes"]}
    assert nodes["sq"]["map"] == {"items": {"kind": "result", "node": "items", "result": "items"},
                                  "item_param": "x", "parallel": None,
                                  "fields": {}}
    assert nodes["items-2"]["hyper"]["hyper_params"] == {"k": [1, 2]}
    assert nodes["items"]["map"] is None and nodes["items"]["hyper"] is None
    assert described["exit_handler"]["name"] == "report"
    assert described["edges"][1] == {"source": "sq", "target": "total", "kind": "collect",
                                     "output": "sq", "param": "values", "ref": "result",
                                     "on": ""}


def test_nodes_ready_together_keep_their_trace_order_and_defaults_are_empty():
    @pipeline
    def two_roots():
        sq.with_options(name="zeta")(x=1)
        sq.with_options(name="alpha")(x=2)

    dag = two_roots.dag
    assert [n.name for n in dag.nodes] == ["zeta", "alpha"]  # not sorted by name
    assert [n.name for n in dag] == ["zeta", "alpha"] and "zeta" in dag and len(dag) == 2
    assert dag.roots() == ["zeta", "alpha"]
    assert dag.describe()["exit_handler"] is None
    assert dag.to_networkx().graph["name"] == dag.name == "two-roots"
    bare = PipelineGraph("bare", (), [])
    assert (bare.description, bare.handler, bare.image, len(bare)) == ("", "", "", 0)


def test_a_result_read_twice_by_a_condition_is_one_condition_edge():
    @pipeline
    def banded():
        it = items()
        with condition((it.results["ok"] == True) & (it.results["ok"] != False)):  # noqa: E712
            sq(x=1)

    assert [e.kind for e in banded.dag.edges] == ["condition"]


def test_a_node_referring_to_an_unknown_node_is_named():
    from mlflowlet.errors import PipelineError
    from mlflowlet.pipelines.graph import Node
    from mlflowlet.pipelines.refs import OutputRef

    orphan = Node("sq", sq, {"x": OutputRef("ghost", "n", "result")})
    with pytest.raises(PipelineError, match="^node 'sq' refers to unknown node 'ghost'$"):
        PipelineGraph("p", (), [orphan])


def _exit_pipeline_dag():
    from tests.compilers.exit_pipelines import with_exit_pipeline

    return with_exit_pipeline.dag


def test_describe_holds_the_exit_sub_pipeline_steps_edges_and_arguments():
    described = _exit_pipeline_dag().describe()
    exit_ = described["exit_pipeline"]
    assert exit_["name"] == "on-end"
    assert exit_["arguments"] == {"channel": {"kind": "param", "name": "message"}}
    assert [n["name"] for n in exit_["nodes"]] == ["notify", "good_news", "bad_news"]
    assert {(e["source"], e["target"], e["kind"]) for e in exit_["edges"]} == {
        ("notify", "good_news", "order")}
    assert [n["condition"] is not None for n in exit_["nodes"]] == [False, True, True]
    assert "notify" not in [n["name"] for n in described["nodes"]]  # not a step of the body
    assert _views().dag.describe()["exit_pipeline"] is None


def test_drawings_box_the_exit_sub_pipeline_steps():
    dag = _exit_pipeline_dag()
    mermaid = dag.to_mermaid().splitlines()
    box = mermaid[mermaid.index('    subgraph exit["on exit: on-end"]'):]
    assert box == ['    subgraph exit["on exit: on-end"]', '        x0["notify"]',
                   '        x1["good_news"]', '        x2["bad_news"]', "        x0 -.-> x1",
                   "    end"]
    dot = dag.to_dot().splitlines()
    cluster = dot[dot.index("    subgraph cluster_exit {"):]
    assert cluster == ["    subgraph cluster_exit {", '        label="on exit: on-end";',
                       '        "notify" [label="notify"];',
                       '        "good_news" [label="good_news"];',
                       '        "bad_news" [label="bad_news"];',
                       '        "notify" -> "good_news" [style=dashed];', "    }", "}"]


def test_drawings_keep_hostile_result_names_inside_their_labels():
    @pipeline(name="café")
    def hostile():
        it = items()
        total(values=it.results['a|b"#c --> d'])

    mermaid = hostile.dag.to_mermaid()
    # quoted, `"` and `#` as Mermaid entity codes: the label cannot end the edge or the line
    assert '    n0 -->|"a|b#quot;#35;c --> d → values"| n1' in mermaid
    dot = hostile.dag.to_dot()
    assert dot.startswith('digraph "café" {')
    assert '[label="a|b\\"#c --> d → values"]' in dot  # DOT reads UTF-8, not \u escapes
