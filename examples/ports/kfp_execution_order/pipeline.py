"""Port of the Kubeflow Pipelines ``execution_order`` sample.

Original: https://github.com/kubeflow/pipelines/blob/master/samples/core/execution_order/execution_order.py

In KFP you write ``step2_task.after(step1_task)``; in mlflowlet the same ``.after(...)`` on the
node a step call returns. The ``echo`` containers become Python steps that print.
"""

from __future__ import annotations

from mlflowlet import pipeline, step


@step
def echo1_op(text1: str) -> None:
    """Echo the first text."""
    print(text1)


@step
def echo2_op(text2: str) -> None:
    """Echo the second text."""
    print(text2)


@pipeline(name="execution-order-pipeline")
def execution_order_pipeline(text1: str = "message 1", text2: str = "message 2"):
    """A two step pipeline with an explicitly defined execution order."""
    step1_task = echo1_op(text1=text1)
    step2_task = echo2_op(text2=text2)
    step2_task.after(step1_task)
