"""Pipelines whose values a compiled run could silently change (importable by module path)."""

from __future__ import annotations

from mlflowlet.pipelines import pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"


@step
def kind(value) -> str:
    return f"{type(value).__name__}:{value!r}"


@pipeline(image=IMAGE)
def float_default(lr: float = 1):
    kind(value=lr)
