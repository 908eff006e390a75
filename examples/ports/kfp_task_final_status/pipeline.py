"""Port of the Kubeflow Pipelines ``pipeline_with_task_final_status_yaml`` test pipeline.

Original: https://github.com/kubeflow/pipelines/blob/master/sdk/python/test_data/pipelines/pipeline_with_task_final_status_yaml.py

In KFP you write ``exit_task = exit_op(user_input=message)``, the component having an input of
type ``PipelineTaskFinalStatus``, and ``with dsl.ExitHandler(exit_task, name='my-pipeline'):``
around ``print_op``; in mlflowlet ``on_exit(exit_op, user_input=message)`` inside the
``@pipeline`` function, the step's parameter annotated ``mlflowlet.PipelineTaskFinalStatus``
(compiled: KFP's ``dsl.PipelineTaskFinalStatus`` input; on Argo built from
``{{workflow.status}}``, ``{{workflow.name}}`` and ``{{workflow.failures}}``).

What changed: the two ``echo`` containers are Python steps, and the exit group keeps mlflowlet's
name (``exit-handler``, not ``my-pipeline``). The original echoes the whole status object; this
port prints its ``state`` only (``completed``: KFP's ``SUCCEEDED``, Argo's ``Succeeded``), the one
field that means the same on every target. The job resource name, task name and error fields
are each engine's own (locally the run's uid and the pipeline's name, see
``mlflowlet._final_status``), so printing them would print something else on each target.
"""

from __future__ import annotations

from mlflowlet import PipelineTaskFinalStatus, on_exit, pipeline, step


@step
def print_op(message: str) -> None:
    """Print a message (the original's ``echo {inputValue: message}``)."""
    print(message)


@step
def exit_op(user_input: str, status: PipelineTaskFinalStatus) -> None:
    """The exit task: echo the user input and the pipeline's final state."""
    print("user input:", user_input, "pipeline status:", status.state)


@pipeline(name="pipeline-with-task-final-status-yaml")
def my_pipeline(message: str = "Hello World!"):
    """Print the message; the exit task reports how the pipeline ended."""
    on_exit(exit_op, user_input=message)
    print_op(message=message)
