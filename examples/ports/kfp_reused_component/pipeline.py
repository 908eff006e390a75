"""Port of the Kubeflow Pipelines SDK test pipeline ``pipeline_with_reused_component``.

Original: https://github.com/kubeflow/pipelines/blob/master/sdk/python/test_data/pipelines/pipeline_with_reused_component.py
(its component: ``sdk/python/test_data/v1_component_yaml/add_component.yaml``)

In KFP one loaded component is called three times, chaining ``.outputs['sum']``; in mlflowlet
one step is called three times, chaining ``.results["sum"]``.
"""

from __future__ import annotations

from mlflowlet import pipeline, step


@step
def add_op(op_1: int, op2: int) -> dict:
    """Component to add two numbers."""
    return {"sum": op_1 + op2}


@pipeline(name="add-pipeline")
def my_pipeline(a: int = 2, b: int = 5):
    """((a + 3) + b) + 7."""
    first_add_task = add_op(op_1=a, op2=3)
    second_add_task = add_op(op_1=first_add_task.results["sum"], op2=b)
    add_op(op_1=second_add_task.results["sum"], op2=7)
