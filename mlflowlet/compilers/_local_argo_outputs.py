"""The local Argo interpreter (``--check``): a fan-out's items and its outputs in the scope.

A fanned-out task's ``when`` that reads ``{{item...}}`` is decided per item (Argo resolves the
task's ``when`` first and, when it needs the item, evaluates it per expanded item,
``workflow/controller/dag.go`` ``resolveTask``): a false one skips that item only, which has no
outputs. A finished fan-out's outputs are aggregated per output parameter and as a whole
(``{{tasks.X.outputs.parameters}}``: a JSON list of each item's ``{name: text}``, only the items
that succeeded; ``processAggregateNodeOutputs`` in ``operator.go``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import CompileError

_ALL_OUTPUTS = re.compile(r"^\{\{tasks\.([^.]+)\.outputs\.parameters\}\}$")


def per_item_when(task: dict[str, Any]) -> bool:
    """Whether ``task`` fans out and its ``when`` reads the item (decided per item)."""
    fans = "withItems" in task or "withParam" in task
    return fans and "{{item" in task.get("when", "")


def item_scope(item: object) -> dict[str, str]:
    """Return ``{{item}}`` and, for a map item, each ``{{item.key}}`` as Argo substitutes them."""
    out = {"item": item if isinstance(item, str) else json.dumps(item)}
    if isinstance(item, dict):
        out.update(
            {f"item.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in item.items()}
        )
    return out


def item_runs(task: dict[str, Any], scope: dict[str, str], name: str) -> bool:
    """Whether this item of ``task`` runs: its per-item ``when`` (if any) holds.

    Raises:
        CompileError: the ``when`` does not resolve or cannot be evaluated.
    """
    from ._argo_expr import ExprError, eval_when
    from ._local_argo import substitute

    if not per_item_when(task):
        return True
    try:
        return eval_when(substitute(task["when"], scope, name))
    except ExprError as exc:
        raise CompileError(f"task {name!r} when: {exc}") from None


def item_output(raw: str, template: dict[str, Any], param: str) -> str:
    """Return the per-output reference ``param`` reads of ``raw``, for lineage (else ``raw``).

    ``raw`` is a ``withParam``; over ``{{tasks.X.outputs.parameters}}`` a parameter reads
    output NAME of each element (its container's ``--item-output param=NAME``).
    """
    match = _ALL_OUTPUTS.match(raw)
    args = template.get("container", {}).get("args", [])
    for flag, pair in zip(args, args[1:], strict=False):
        if match and flag == "--item-output" and pair.startswith(f"{param}="):
            name = pair.split("=", 1)[1]
            return "{{tasks." + match.group(1) + ".outputs.parameters." + name + "}}"
    return raw


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
    if fanned:  # every output of each item that succeeded (a skipped item has none)
        scope[f"tasks.{name}.outputs.parameters"] = json.dumps([o for o in outputs if o])
    for p in template.get("outputs", {}).get("parameters", []):
        key = f"tasks.{name}.outputs.parameters.{p['name']}"
        values = [o[p["name"]] for o in outputs if p["name"] in o]
        if fanned:  # Argo aggregates a fanned-out task's output parameter as a JSON list
            scope[key] = aggregate(values)
        elif values:
            scope[key] = values[0]
