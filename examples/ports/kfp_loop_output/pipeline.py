"""Port of the Kubeflow Pipelines ``loop_output`` sample (v2).

Original: https://github.com/kubeflow/pipelines/blob/master/samples/core/loop_output/loop_output_v2.py

In KFP you write ``with dsl.ParallelFor(args_generator.output) as item:`` over a step that
returns a JSON *string*; in mlflowlet ``print_op.map(items=args_generator.output,
item_param="s")`` over the same string result.
"""

from __future__ import annotations

from mlflowlet import pipeline, step


@step
def args_generator_op() -> str:
    """Return the loop items as a JSON string."""
    return "[1.1, 1.2, 1.3]"


@step
def print_op(s: str) -> None:
    """Print one item."""
    print(s)


@pipeline(name="pipeline-with-loop-output-v2")
def my_pipeline():
    """Fan out over the items of a JSON-string result."""
    args_generator = args_generator_op()
    print_op.map(items=args_generator.output, item_param="s")
