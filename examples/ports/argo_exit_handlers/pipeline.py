"""Port of the Argo Workflows ``exit-handlers`` example.

Original: https://github.com/argoproj/argo-workflows/blob/main/examples/exit-handlers.yaml

In Argo you write ``onExit: exit-handler``, a steps template whose ``celebrate`` and ``cry`` run
``when: "{{workflow.status}} == Succeeded"`` / ``!= Succeeded``; in mlflowlet
``@pipeline(on_exit=exit_handler)`` with ``exit_handler`` a ``@pipeline`` taking ``state`` and
``failures``, its conditional steps in ``with condition(state == "completed"):`` /
``with condition(state != "completed"):`` (compiled to Argo: an ``onExit`` DAG template with
``when: "'{{workflow.status}}' == 'Succeeded'"``; KFP v2 cannot carry an exit handler of several
steps and refuses it at compile time).

What changed: the ``alpine`` containers are Python steps. The original's ``send-email`` echoes
``{{workflow.name}} {{workflow.status}} {{workflow.duration}}. Failed steps
{{workflow.failures}}``; here the step prints the final state (mlflowlet's ``error``, Argo's
``Failed``) and the failed steps' names (``failures``: Argo's ``{{workflow.failures}}`` read by
task name), and logs the workflow's name and duration (``context.workflow.name`` /
``.duration``: Argo ``{{workflow.name}}`` / ``{{workflow.duration}}``) as results rather than
printing them: both are each run's own (a generated name, a time), so the printed line stays the
same on every target.
"""

from __future__ import annotations

import sys

from mlflowlet import condition, pipeline, step


@step
def intentional_fail() -> None:
    """The primary template: ``echo intentional failure; exit 1``."""
    print("intentional failure")
    sys.exit(1)


@step
def send_email(context, state: str, failures: list) -> None:
    """Notify: the workflow's name, status, duration and failed steps."""
    wf = context.workflow
    context.log_results({"name": wf.name, "duration": wf.duration})
    print(f"send e-mail: {state}. Failed steps {failures}")


@step
def celebrate() -> None:
    """``echo hooray!``."""
    print("hooray!")


@step
def cry() -> None:
    """``echo boohoo!``."""
    print("boohoo!")


@pipeline(name="exit-handler")
def exit_handler(state: str, failures: list):
    """The exit handler: notify, then celebrate or cry by the final state."""
    send_email(state=state, failures=failures)
    with condition(state == "completed"):
        celebrate()
    with condition(state != "completed"):
        cry()


@pipeline(name="exit-handlers", on_exit=exit_handler)
def exit_handlers():
    """Fail on purpose; the exit handler runs anyway."""
    intentional_fail()
