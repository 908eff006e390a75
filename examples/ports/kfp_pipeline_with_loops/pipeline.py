"""Port of the Kubeflow Pipelines SDK test pipeline ``pipeline_with_loops``.

Original: https://github.com/kubeflow/pipelines/blob/master/sdk/python/test_data/pipelines/pipeline_with_loops.py

In KFP you write ``with dsl.ParallelFor(items) as item: print_text(msg=item)``; in mlflowlet
``print_text.map(items=items, item_param="msg")``, over a pipeline parameter or a step output.
"""

from __future__ import annotations

from mlflowlet import pipeline, step


@step
def args_generator_op() -> list[dict[str, str]]:
    """Return the loop arguments: dicts whose values are strings that look like numbers."""
    return [{"A_a": "1", "B_b": "2"}, {"A_a": "10", "B_b": "20"}]


@step
def print_text(msg: str) -> None:
    """Print a message."""
    print(msg)


@step
def print_struct(struct: dict) -> None:
    """Print a dict."""
    print(struct)


@pipeline(name="pipeline-with-loops")
def my_pipeline(loop_parameter: list[str] = ["a", "b"]):  # noqa: B006 - the original's default
    """Loop over a pipeline parameter, then over a step's output."""
    # Loop argument is from a pipeline input
    print_text.map(items=loop_parameter, item_param="msg")

    # Loop argument is from a component output
    args_generator = args_generator_op()
    print_struct.map(items=args_generator.output, item_param="struct")
