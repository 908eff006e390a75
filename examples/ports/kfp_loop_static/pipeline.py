"""Port of the Kubeflow Pipelines ``loop_static`` sample (v2).

Original: https://github.com/kubeflow/pipelines/blob/master/samples/core/loop_static/loop_static_v2.py

In KFP you write a ``with dsl.ParallelFor(static_loop_arguments) as item:`` block holding two
tasks (``concat_op(a=item.a, b=item.b)`` then ``print_op(text=concat_task.output)``); in
mlflowlet the block's body is a ``@pipeline`` mapped over the items,
``loop_body.map(items=..., a=item.a, b=item.b)``: each item's ``print_op`` waits for that item's
``concat_op`` only. The original's ``concat_task.after(print_task)`` is ``.after(print_task)``
on the map (it orders the body's first step, ``concat_op``).
"""

from __future__ import annotations

from mlflowlet import item, pipeline, step


@step
def print_op(text: str) -> str:
    """Print a text and return it."""
    print(text)
    return text


@step
def concat_op(a: str, b: str) -> str:
    """Print and return ``a + b``."""
    print(a + b)
    return a + b


@pipeline
def loop_body(a: str, b: str):
    """The body of the original's ParallelFor: concat, then print what it returned."""
    concat_task = concat_op(a=a, b=b)
    print_op(text=concat_task.output)


@pipeline(name="pipeline-with-loop-static")
def my_pipeline(greeting: str = "this is a test for looping through parameters"):
    """Print a greeting, then concat and print each static item's two fields."""
    print_task = print_op(text=greeting)
    static_loop_arguments = [{"a": "1", "b": "2"}, {"a": "10", "b": "20"}]
    loop_body.map(items=static_loop_arguments, a=item.a, b=item.b).after(print_task)
