"""Port of the Kubeflow Pipelines SDK test pipeline ``parallelfor_fan_in/simple_with_parameters``.

Original: https://github.com/kubeflow/pipelines/blob/master/sdk/python/test_data/pipelines/parallelfor_fan_in/simple_with_parameters.py

In KFP you write ``return add(nums=dsl.Collected(t.output)).output`` in a pipeline declared
``-> int``; in mlflowlet the same ``return``: the pipeline run's output ``return`` (a KFP
pipeline output, the Argo workflow's output), keeping its type.
"""

from __future__ import annotations

from mlflowlet import collect, pipeline, step


@step
def double(num: int) -> int:
    """Double a number."""
    return 2 * num


@step
def add(nums: list[int]) -> int:
    """Sum the numbers."""
    return sum(nums)


@pipeline(name="math-pipeline")
def math_pipeline():
    """Double each of 1, 2, 3 in parallel, sum them, and return the sum."""
    t = double.map(items=[1, 2, 3], item_param="num")
    return add(nums=collect(t.output)).output
