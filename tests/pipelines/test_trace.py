"""Trace-time holes closed at the call site: each mistake fails with file:line and the fix."""

import pytest

from mlflowlet import DataItem, collect, condition, pipeline, step
from mlflowlet.errors import PipelineError


@step
def produce(n: int = 2) -> dict:
    return {"x": n, "items": list(range(n))}


@step
def consume(text: str = "") -> str:
    return text


@step
def read(data: DataItem) -> int:
    return len(data.get())


@step(outputs=["blob"])
def write(n: int = 1) -> bytes:
    return b"x" * n


def _trace(body):
    return pipeline(name="p")(body).validate()


FORMATS = {
    "fstring": lambda ref: f"n={ref}",
    "format": lambda ref: "n={}".format(ref),  # noqa: UP032 - the form under test
    "str": lambda ref: str(ref),
    "plus": lambda ref: ref + "!",
    "radd": lambda ref: "n=" + ref,
    "percent": lambda ref: "n=%s" % ref,  # noqa: UP031 - the form under test
}


@pytest.mark.parametrize("how", sorted(FORMATS))
def test_a_reference_formatted_into_a_string_fails_at_its_line(how):
    def body():
        consume(text=FORMATS[how](produce().results["x"]))

    with pytest.raises(PipelineError) as err:
        _trace(body)
    message = str(err.value)
    assert f"{__file__}:{FORMATS[how].__code__.co_firstlineno}:" in message
    assert "produce.results['x']" in message and "Pass the reference itself" in message
    assert "\n" not in message


def test_a_collected_reference_formatted_into_a_string_fails_too():
    def body():
        p = produce()
        sq = consume.map(items=p.results["items"], item_param="text")
        consume(text=f"{collect(sq.results['return'])}")

    with pytest.raises(PipelineError, match="collect.*no value and no edge"):
        _trace(body)


def test_a_literal_given_to_a_dataitem_parameter_fails_at_trace_time():
    def body():
        read(data="s3://bucket/file.csv")

    with pytest.raises(PipelineError, match=r"test_trace.py:\d+: parameter 'data' of step "
                       r"'read' is a DataItem .* gets the literal 's3://bucket/file.csv'"):
        _trace(body)


@pytest.mark.parametrize("source", ["result", "param"])
def test_a_result_or_pipeline_parameter_given_to_a_dataitem_parameter_fails(source):
    def body(path: str = "x"):
        p = produce()
        read(data=p.results["x"] if source == "result" else path)

    with pytest.raises(PipelineError, match="is a DataItem .* (a result|a pipeline parameter)"):
        _trace(body)


def test_an_artifact_given_to_a_dataitem_parameter_traces():
    def body():
        read(data=write(n=3).outputs["blob"])

    assert [n.name for n in _trace(body).dag.nodes] == ["write", "read"]


def test_a_pipeline_function_that_returns_a_whole_node_is_refused_naming_it():
    def body():
        return produce()

    with pytest.raises(PipelineError, match=r"@pipeline .*body \(.*test_trace.py:\d+\): its "
                       r"return value is a whole step \(produce\); return produce.output"):
        _trace(body)


def test_a_pipeline_function_returning_none_traces():
    def body():
        produce()
        return None

    assert len(_trace(body).dag) == 1


def test_a_map_over_a_parameter_that_is_not_a_list_fails_at_trace_time():
    def body(names: str = "[1, 2]"):
        consume.map(items=names, item_param="text")

    with pytest.raises(PipelineError, match="declared str; a map needs a list"):
        _trace(body)


def test_each_with_block_is_one_block_and_nested_blocks_nest():
    def body():
        p = produce()
        with condition(p.results["x"] > 1):
            a = consume(text="a")
            consume(text="b").after(a)
            with condition(p.results["x"] > 5):
                consume(text="c")
        with condition(p.results["x"] > 1):
            consume(text="d")

    nodes = {n.name: n for n in _trace(body).dag.nodes}
    outer = nodes["consume"].blocks
    assert len(outer) == 1 and nodes["consume-2"].blocks == outer
    assert nodes["consume-3"].blocks[0] is outer[0] and len(nodes["consume-3"].blocks) == 2
    assert nodes["consume-4"].blocks[0] is not outer[0]  # same expression, another block
    assert str(nodes["consume-3"].condition) == "(produce.results['x'] > 1 & " \
        "produce.results['x'] > 5)"
    assert nodes["produce"].blocks == ()
    described = {n["name"]: n["condition_blocks"] for n in _trace(body).describe()["nodes"]}
    assert described == {"produce": [], "consume": [0], "consume-2": [0], "consume-3": [0, 1],
                         "consume-4": [2]}
