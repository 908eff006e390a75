"""Pipeline outputs: what a ``@pipeline`` function returns becomes the pipeline run's outputs.

A pipeline function may return a step's result or artifact (``t.output``,
``t.outputs["model"]``), a collected list (``collect(m.results["x"])``), a pipeline parameter, a
JSON value, or a dict of them (its keys become the output names; a single value is output
``return``, as a step's return value is result ``return``). Results become the pipeline run's
results, artifacts its artifacts (link records of the producing step's version: no bytes are
copied). Compilers turn them into KFP pipeline outputs and the Argo workflow's outputs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import PipelineError
from .refs import Collected, Condition, Operand, OutputRef, PipelineParam

RETURN = "return"
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def pipeline_outputs(returned: Any, where: str, nodes: dict[str, Any]) -> dict[str, Any]:
    """Return the outputs of a traced pipeline function's return value (see the module doc).

    Args:
        returned: what the function returned.
        where: ``'@pipeline name (file:line)'`` for messages.
        nodes: node name to node, of the traced pipeline.

    Raises:
        PipelineError: a value that cannot be an output (names it and the fix).
    """
    if returned is None:
        return {}
    if isinstance(returned, dict) and not isinstance(returned, Operand):
        out = {}
        for key, value in returned.items():
            if not isinstance(key, str) or not _KEY.match(key):
                raise PipelineError(
                    f"{where} returns a dict with key {key!r}; output names are identifiers "
                    "(letters, digits and '_', not starting with a digit)"
                )
            out[key] = _check(value, f"{where}: output {key!r}", nodes)
        return out
    return {RETURN: _check(returned, f"{where}: its return value", nodes)}


def _check(value: Any, where: str, nodes: dict[str, Any]) -> Any:
    from ._trace import NodeHandle

    if isinstance(value, NodeHandle):
        raise PipelineError(
            f"{where} is a whole step ({value.name}); return {value.name}.output, "
            f"{value.name}.results['<result>'] or {value.name}.outputs['<artifact>']"
        )
    if isinstance(value, Condition):
        raise PipelineError(f"{where} is a condition, which has no value; return a result")
    ref = value.ref if isinstance(value, Collected) else value
    if isinstance(value, Collected) and value.every:
        raise PipelineError(
            f"{where} is {value!r}: every result of each item is map items only; return one "
            f"result of each, collect({value.node}.results['key'])"
        )
    if isinstance(value, Collected) and ref.kind == "artifact":
        raise PipelineError(
            f"{where} is {value!r}: collected artifacts cannot be a pipeline output yet; pass "
            "them to a step that stores what the pipeline should output"
        )
    if isinstance(ref, OutputRef):
        if ref.mapped and not isinstance(value, Collected):
            raise PipelineError(f"{where} is {ref!r} of a mapped step; return collect({ref!r})")
        node = nodes[ref.node]
        if node.blocks and not isinstance(value, Collected):
            raise PipelineError(
                f"{where} is {ref!r}, and step {ref.node!r} runs inside `with condition("
                f"{node.blocks[-1].condition})`, so it may have no value; return an output of "
                "a step outside the block"
            )
        if getattr(node, "after_on", None) and not isinstance(value, Collected):
            raise PipelineError(
                f"{where} is {ref!r}, and step {ref.node!r} runs on another step's status, so it "
                "may have no value; return an output of a step that always runs"
            )
        return value
    if isinstance(value, (Operand, Collected)):
        return value
    _no_refs_inside(value, where)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise PipelineError(
            f"{where} is a {type(value).__name__}; outputs are step outputs, collected lists, "
            "pipeline parameters or JSON values"
        ) from None
    return value


def _no_refs_inside(value: Any, where: str) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (Operand, Collected)):
            raise PipelineError(
                f"{where} holds {item!r} inside a list; return a dict of outputs, or "
                "collect() the results of a mapped step"
            )
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def kind_of(value: Any) -> str:
    """Return an output's kind: ``artifact``, ``artifacts`` (collected), ``result``, ``value``."""
    ref = value.ref if isinstance(value, Collected) else value
    if isinstance(ref, OutputRef) and ref.kind == "artifact":
        return "artifacts" if isinstance(value, Collected) else "artifact"
    if isinstance(value, (OutputRef, Collected)):
        return "result"
    return "param" if isinstance(value, PipelineParam) else "value"


def resolve_outputs(
    outputs: dict[str, Any], resolver: Any, states: dict[str, str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str]]:
    """Resolve outputs after a local run: ``(results, artifact records by key, problems)``.

    An output whose step did not complete is a problem (the pipeline run then fails, as an
    engine fails to resolve a workflow output).
    """
    results: dict[str, Any] = {}
    artifacts: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for key, value in outputs.items():
        ref = value.ref if isinstance(value, Collected) else value
        if isinstance(ref, OutputRef) and states.get(ref.node) != "completed":
            problems.append(f"pipeline output {key!r}: step {ref.node!r} is {states.get(ref.node)}")
            continue
        try:
            if isinstance(value, Collected):
                params: dict[str, Any] = {}
                resolver._collect(ref, key, params, {}, {}, [])
                results[key] = params[key]
            elif isinstance(value, OutputRef) and value.kind == "artifact":
                from ._inputs import _artifact

                artifacts[key] = _artifact(resolver.runs[value.node], value.key, value.node)
            elif isinstance(value, (OutputRef, PipelineParam)):
                results[key] = resolver.value_of(value)
            else:
                results[key] = value
        except PipelineError as exc:
            problems.append(f"pipeline output {key!r}: {exc}")
    return results, artifacts, problems
