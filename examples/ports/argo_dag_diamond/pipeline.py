"""Port of the Argo Workflows ``dag-diamond`` example.

Original: https://github.com/argoproj/argo-workflows/blob/main/examples/dag-diamond.yaml
(Hera: https://github.com/argoproj-labs/hera/blob/main/examples/workflows/dags/dag_diamond_with_script.py,
``A >> [B, C] >> D``)

In Argo you write ``depends: "B && C"`` (Hera ``A >> [B, C] >> D``); in mlflowlet
``echo.with_options(name="D")(message="D").after(b, c)``.
"""

from __future__ import annotations

from mlflowlet import pipeline, step


@step
def echo(message: str) -> None:
    """Echo the message."""
    print(message)


@pipeline(name="dag-diamond")
def diamond():
    """A -> (B, C) -> D, ordered only by dependencies."""
    a = echo.with_options(name="A")(message="A")
    b = echo.with_options(name="B")(message="B").after(a)
    c = echo.with_options(name="C")(message="C").after(a)
    echo.with_options(name="D")(message="D").after(b, c)
