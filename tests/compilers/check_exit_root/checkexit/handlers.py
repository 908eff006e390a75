"""An exit handler in a package: its container imports ``checkexit.handlers`` from the root."""

from __future__ import annotations

from mlflowlet.pipelines import step


@step
def farewell(state: str = "") -> dict:
    return {"final": state}
