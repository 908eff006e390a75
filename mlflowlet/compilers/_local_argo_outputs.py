"""The local Argo interpreter: a finished task's output parameters in the scope (``--check``)."""

from __future__ import annotations

import json
from typing import Any


def aggregate(values: list[str]) -> str:
    """Aggregate a fanned-out task's output parameter values the way the Argo controller does.

    A JSON list of the values themselves when every one parses as a JSON object or array, else
    a JSON list of their texts (scalars such as ``2.0`` stay the string ``"2.0"``); see
    ``tryJSONUnmarshal`` in Argo's ``workflow/controller/operator.go``.
    """
    parsed: list[Any] = []
    for value in values:
        try:
            item = json.loads(value)
        except ValueError:
            return json.dumps(values)
        if not isinstance(item, (dict, list)):
            return json.dumps(values)
        parsed.append(item)
    return json.dumps(parsed)


def publish(
    scope: dict[str, str],
    name: str,
    template: dict[str, Any],
    outputs: list[dict[str, str]],
    fanned: bool,
) -> None:
    """Put task ``name``'s output parameters in ``scope`` (one per item of a fan-out, aggregated).

    ``outputs``: the output parameters of each item that succeeded (of the one run when not
    ``fanned``).
    """
    for p in template.get("outputs", {}).get("parameters", []):
        key = f"tasks.{name}.outputs.parameters.{p['name']}"
        values = [o[p["name"]] for o in outputs if p["name"] in o]
        if fanned:  # Argo aggregates a fanned-out task's output parameter as a JSON list
            scope[key] = aggregate(values)
        elif values:
            scope[key] = values[0]
