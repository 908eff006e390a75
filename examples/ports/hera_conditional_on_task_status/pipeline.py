"""Port of the Hera ``conditional_on_task_status`` example (run a task by another's status).

Original: https://github.com/argoproj-labs/hera/blob/main/examples/workflows/dags/conditional_on_task_status.py
(Argo's own form: https://github.com/argoproj/argo-workflows/blob/main/examples/status-reference.yaml)

In Hera you write ``r.on_success(success())`` and ``r.on_failure(failure())`` (Argo
``depends: "random.Succeeded"`` / ``"random.Failed"``); in mlflowlet
``success().after(r, on="success")`` and ``failure().after(r, on="failure")``. KFP v2 has no
task that runs on another's failure (its ``ignore_upstream_failure()`` becomes an exit hook the
backend never starts here): compiling to KFP is refused, naming the step.

Test seam (the only addition): ``force_result`` (``success`` / ``failure``) forces the draw;
empty, the default, fails at random half of the time as the original does.
"""

from __future__ import annotations

import random as _random

from mlflowlet import pipeline, step


@step
def random(force_result: str = "") -> None:
    """Fail half of the time."""
    p = _random.random()
    if force_result == "failure" or (not force_result and p <= 0.5):
        raise Exception("failure")


@step
def success() -> None:
    """Say it succeeded."""
    print("succeeded!")


@step
def failure() -> None:
    """Say it failed."""
    print("failed!")


@pipeline(name="dag-conditional-on-task-status")
def conditional_on_task_status(force_result: str = ""):
    """Run ``success`` or ``failure`` by how ``random`` ended."""
    r = random(force_result=force_result)
    success().after(r, on="success")
    failure().after(r, on="failure")
