"""Port of the Kubeflow Pipelines ``exit_handler`` sample (v2).

Original: https://github.com/kubeflow/pipelines/blob/master/samples/core/exit_handler/exit_handler_v2.py

In KFP you write ``with dsl.ExitHandler(exit_task):`` around the pipeline's tasks; in mlflowlet
``on_exit(exit_op, message='Exit handler has worked!')`` inside the ``@pipeline`` function. What
changed: an exit step takes the final ``state`` (or a ``PipelineTaskFinalStatus``), so the
original's exit task ``print_op`` becomes ``exit_op``, which prints the same message.
"""

from __future__ import annotations

import sys

from mlflowlet import on_exit, pipeline, step


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
def exit_op(state: str, message: str) -> None:
    """The exit task: print a message (the original's ``print_op``)."""
    print(message)


@pipeline(name="pipeline-with-exit-handler")
def pipeline_exit_handler(message: str = "Hello World!"):
    """Print, fail, and run the exit handler anyway."""
    on_exit(exit_op, message="Exit handler has worked!")
    print_op(message=message)
    fail_op(message="Task failed.")
