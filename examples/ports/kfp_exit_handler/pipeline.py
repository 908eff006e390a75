"""Port of the Kubeflow Pipelines ``exit_handler`` sample (v2).

Original: https://github.com/kubeflow/pipelines/blob/master/samples/core/exit_handler/exit_handler_v2.py

In KFP you write ``with dsl.ExitHandler(exit_task):`` around the pipeline's tasks; in mlflowlet
``@pipeline(on_exit=exit_step)``. An exit step receives the final ``state`` and cannot take other
arguments yet (issue #13), so the original's ``print_op(message='Exit handler has worked!')``
becomes a step whose ``message`` defaults to that text.
"""

from __future__ import annotations

import sys

from mlflowlet import pipeline, step


@step
def print_op(message: str) -> None:
    """Print a message."""
    print(message)


@step
def fail_op(message: str) -> None:
    """Fail."""
    print(message)
    sys.exit(1)


@step
def exit_op(state: str = "", message: str = "Exit handler has worked!") -> None:
    """The exit task: print a message (the original's ``print_op`` with a fixed argument)."""
    print(message)


@pipeline(name="pipeline-with-exit-handler", on_exit=exit_op)
def pipeline_exit_handler(message: str = "Hello World!"):
    """Print, fail, and run the exit handler anyway."""
    print_op(message=message)
    fail_op(message="Task failed.")
