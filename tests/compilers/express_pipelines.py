"""Pipelines of the expressiveness constructs (#13) the compiler tests compile and check.

Importable by module path, as a container would import them.
"""

from __future__ import annotations

from datetime import timedelta

from mlflowlet.pipelines import pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"


# typed artifacts -------------------------------------------------------------------------------
@step(outputs={"model": "model", "metrics": "metrics", "report": "html", "notes": "markdown",
               "rows": "dataset", "blob": "artifact"})
def typed(context):
    for key in ("model", "metrics", "report", "notes", "rows", "blob"):
        context.log_artifact(key, body=f"{key}\n".encode())


@step(outputs=["model", "dataset"])  # named like kinds, declared as none
def untyped(context):
    context.log_artifact("model", body=b"m\n")
    context.log_artifact("dataset", body=b"d\n")


class Model:  # a return annotation naming a kind (as kfp.dsl.Model does)
    pass


class HTML:
    pass


@step(outputs=["weights", "page"])
def annotated() -> tuple[Model, HTML]:
    return b"w", "<p>hi</p>"


@pipeline(image=IMAGE)
def kinds():
    typed()
    untyped()
    annotated()


# cache staleness ------------------------------------------------------------------------------
@step(cache=timedelta(seconds=10))
def fresh(message: str) -> str:
    print(message)
    return message.upper()


@pipeline(image=IMAGE)
def stale(message: str = "hello"):
    fresh(message=message)
