"""Pipelines of the richer exit handlers (#13): the final status object given to an exit step.

Importable by module path, as a container would import them.
"""

from __future__ import annotations

import sys

from mlflowlet import PipelineTaskFinalStatus
from mlflowlet.pipelines import condition, on_exit, pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"


@step
def shout(message: str) -> None:
    print(message)


@step
def crash(message: str) -> None:
    print(message)
    sys.exit(3)


@step
def status_exit(user_input: str, status: PipelineTaskFinalStatus, context) -> str:
    """Print and return the final status's state; log every field (engine-specific ones too)."""
    assert isinstance(status, PipelineTaskFinalStatus)  # the object, not its JSON
    print(f"{user_input}: {status.state}")
    context.log_result("fields", {**vars(status)})
    return status.state


@pipeline(image=IMAGE)
def final_status(message: str = "hi", fail: bool = False):
    """An exit step taking the whole final status (and an argument), no ``state``."""
    on_exit(status_exit, user_input=message)
    shout(message=message)
    with condition(fail == True):  # noqa: E712 - a pipeline condition, not a Python test
        crash(message="down")


@step
def clocked(context) -> float:
    """Return ``context.workflow.duration`` (seconds the pipeline run had taken)."""
    return context.workflow.duration


@pipeline(image=IMAGE)
def timed():
    """A step after another, reading how long the pipeline run has taken."""
    clocked().after(shout(message="first"))


# an exit sub-pipeline ----------------------------------------------------------------------------
@step
def notify(state: str, failures: list, channel: str) -> str:
    print(f"{channel}: {state} {failures}")
    return state


@step
def good_news(status: PipelineTaskFinalStatus) -> None:
    print(f"good news: {status.state}")


@step
def bad_news(times: int) -> None:
    print("bad news " * times)


@pipeline(image=IMAGE)
def on_end(state: str, failures: list, status: PipelineTaskFinalStatus, channel: str,
           times: int = 2):
    """Notify, then one of two steps by the final state (one of them after the notification)."""
    sent = notify(state=state, failures=failures, channel=channel)
    with condition(state == "completed"):
        good_news(status=status).after(sent)
    with condition(state == "error"):
        bad_news(times=times)


@pipeline(image=IMAGE)
def with_exit_pipeline(message: str = "hi", fail: bool = False):
    """A pipeline whose exit handler is a sub-pipeline given a pipeline parameter."""
    on_exit(on_end, channel=message)
    shout(message=message)
    with condition(fail == True):  # noqa: E712
        crash(message="down")
