"""Port of the Kubeflow Pipelines SDK test pipeline ``pipeline_with_after``.

Original: https://github.com/kubeflow/pipelines/blob/master/sdk/python/test_data/pipelines/pipeline_with_after.py

In KFP you write ``component_op(text='3rd task').after(task1, task2)``; in mlflowlet
``print_text(text="3rd task").after(task1, task2)``. The ``alpine`` echo container becomes a
Python step that prints.
"""

from __future__ import annotations

from mlflowlet import pipeline, step


@step
def print_text(text: str) -> None:
    """Print the text."""
    print(text)


@pipeline(name="pipeline-with-after")
def my_pipeline():
    """Three tasks in a strict order, ordered only by ``.after``."""
    task1 = print_text(text="1st task")
    task2 = print_text(text="2nd task").after(task1)
    print_text(text="3rd task").after(task1, task2)
