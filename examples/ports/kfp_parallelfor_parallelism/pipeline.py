"""Port of the Kubeflow Pipelines SDK test pipeline ``pipeline_with_parallelfor_parallelism``.

Original: https://github.com/kubeflow/pipelines/blob/master/sdk/python/test_data/pipelines/pipeline_with_parallelfor_parallelism.py

In KFP you write ``with dsl.ParallelFor(items=..., parallelism=2) as item:`` blocks, some holding
two tasks and a nested ``ParallelFor``; in mlflowlet each block's body is a ``@pipeline`` mapped
over the items (``body.map(items=..., parallel=2, msg=item)``) and a one-task block is
``step.map(items=..., x=item.a)``; a map inside a mapped body is a nested map.
``parallelism=0`` (no limit) is the default (no ``parallel=``). What changed: the original's
fifth upstream list comes from ``list_dict_maker_v1`` compiled to a file and loaded back
(``components.load_component_from_file``); here it is ``list_dict_maker_v1`` called again.
"""

from __future__ import annotations

from mlflowlet import item, pipeline, step


@step
def print_text(msg: str) -> None:
    """Print a message."""
    print(msg)


@step
def print_int(x: int) -> None:
    """Print an int."""
    print(x)


@step
def list_dict_maker_v0() -> list[dict[str, int]]:
    """Return a list of dicts of str to int (strictly typed)."""
    return [{"a": 1, "b": 2}, {"a": 2, "b": 3}, {"a": 3, "b": 4}]


@step
def list_dict_maker_v1() -> list[dict]:
    """Return a list of dicts (generic dict typing)."""
    return [{"a": 1, "b": 2}, {"a": 2, "b": 3}, {"a": 3, "b": 4}]


@step
def list_dict_maker_v2() -> list[dict]:
    """Return a list of dicts, no type enforcement."""
    return [{"a": 1, "b": 2}, {"a": 2, "b": 3}, {"a": 3, "b": 4}]


@step
def list_dict_maker_v3() -> list:
    """Return a plain list."""
    return [{"a": 1, "b": 2}, {"a": 2, "b": 3}, {"a": 3, "b": 4}]


@pipeline
def text_body(msg: str, loop_parameter: list[str]):
    """Print the item, then each item of the same list (a nested map)."""
    print_text(msg=msg)
    print_text.map(items=loop_parameter, msg=item)


@pipeline
def pair_body(a: str, b: str):
    """Print both fields of an item."""
    print_text(msg=a)
    print_text(msg=b)


@pipeline
def static_body(A_a: str, B_b: str):  # noqa: N803 - the original's item keys
    """Print both fields, then both fields of each nested item, one item at a time."""
    print_text(msg=A_a)
    print_text(msg=B_b)
    nested_loop_args = [{"A_a": "10", "B_b": "20"}, {"A_a": "100", "B_b": "200"}]
    pair_body.map(items=nested_loop_args, parallel=1, a=item.A_a, b=item.B_b)


@pipeline(name="pipeline-with-loops")
def my_pipeline(loop_parameter: list[str]):
    """Nested loops with parallelism limits, over a parameter, literals and step outputs."""
    # Loop argument is from a pipeline input
    text_body.map(items=loop_parameter, parallel=2, msg=item, loop_parameter=loop_parameter)

    # Loop argument is a static value known at compile time
    loop_args = [{"A_a": "1", "B_b": "2"}, {"A_a": "10", "B_b": "20"}]
    static_body.map(items=loop_args, A_a=item.A_a, B_b=item.B_b)

    # Loop argument that is a static dictionary known at compile time.
    dict_loop_argument = [{"a": 1, "b": 2}, {"a": 2, "b": 3}, {"a": 3, "b": 4}]
    print_int.map(items=dict_loop_argument, parallel=1, x=item.a)

    # Loop argument that coming from the upstream component.
    for maker in (list_dict_maker_v0, list_dict_maker_v1, list_dict_maker_v2, list_dict_maker_v3):
        print_int.map(items=maker().output, x=item.a)

    # The original loads list_dict_maker_v1 from its compiled file: the same step here
    print_int.map(items=list_dict_maker_v1().output, x=item.a)
