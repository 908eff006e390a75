"""Pipelines whose steps read ``context.workflow`` (importable: compiled steps run by module)."""

from mlflowlet import item, pipeline, step

IMAGE = "registry.example/mlflowlet-test:1"
DIFFERS = ["name", "uid", "created", "target"]  # the engine's own values, not the local run's


@step
def who(context, x: int = 1):
    """Log what ``context.workflow`` says."""
    wf = context.workflow
    context.log_results(
        {"name": wf.name, "uid": wf.uid, "params": wf.parameters, "created": wf.created,
         "target": wf.target, "x": x}
    )


@step(retries=1)
def flaky(context):
    """Fail the first attempt, log the attempt number of the one that succeeds."""
    attempt = context.workflow.attempt
    if attempt == 1:
        raise RuntimeError("the first attempt fails")
    context.log_result("attempt", attempt)


@step
def once(context):
    """One attempt, no retries: attempt 1."""
    context.log_result("attempt", context.workflow.attempt)


@step
def plain(n: int = 1) -> int:
    """Reads no workflow context: gets none of its arguments."""
    return n


@pipeline(image=IMAGE)
def info(lr: float = 0.5, tag: str = "t"):
    """A step reading the workflow's name, uid, parameters and creation time."""
    who(x=2)
    plain()


@pipeline(image=IMAGE)
def retried():
    """A step reading the attempt number, with and without retries."""
    flaky()
    once()


@pipeline(image=IMAGE)
def who_body(x: int):
    """A loop body whose step reads ``context.workflow``."""
    who(x=x)


@pipeline(image=IMAGE)
def in_body(lr: float = 0.5, tag: str = "t"):
    """``context.workflow`` read by each item of a sub-pipeline map."""
    who_body.map(items=[{"x": 1}, {"x": 2}], x=item.x)
