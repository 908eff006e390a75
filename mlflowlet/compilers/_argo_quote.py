"""A pipeline parameter in an Argo ``when``: a string goes inside govaluate quotes.

Argo substitutes ``{{workflow.parameters.x}}`` into the ``when`` text before govaluate parses
it, so a string parameter is written quoted (``'{{workflow.parameters.mode}}' == 'a'``) and its
value must not hold a quote (the expression no longer parses: the workflow errors) or a
backslash (govaluate reads it as an escape: the value compared is another one). Such a value
is refused where it is known: a default at compile time, an argument at submit. So is a
number govaluate cannot compare exactly (an integer beyond 2**53, NaN, infinity).

On both targets a string holding ``{{`` (or any the wire form changes, see
:func:`mlflowlet._wire.wire_text`) is refused too: it crosses as its wire form, which the
condition would compare instead of the value (Argo substitutes the raw text into the ``when``;
KFP compares the parameter's text in CEL).
"""

from __future__ import annotations

from typing import Any

from ..errors import CompileError


def condition_params(dag: Any) -> set[str]:
    """Return the pipeline parameters some step's condition reads."""
    from ..pipelines.refs import PipelineParam

    return {
        operand.name
        for node in dag.nodes
        if node.condition is not None
        for operand in node.condition.operands()
        if isinstance(operand, PipelineParam)
    }


def check_when_values(dag: Any, values: dict[str, Any], where: str, target: str = "argo") -> None:
    """Refuse a value a condition would not compare exactly (see the module docstring).

    Raises:
        CompileError: names the parameter, the value and why.
    """
    from .._govaluate import when_literal
    from .._wire import wire_text

    for name in sorted(condition_params(dag) & set(values)):
        value = values[name]
        if isinstance(value, str) and wire_text(value) != value:
            raise CompileError(
                f"{where} {name}={value!r:.60}, compared in a condition, holds '{{{{' (or a "
                f"trailing '{{'): {target} target carries it in another form (its tags would "
                "be substituted), which the condition would compare instead; pass a value "
                "without them, or compare it inside a step"
            )
        if target != "argo":
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                when_literal(value)
            except ValueError as exc:  # govaluate's float64 would round or cannot read it
                raise CompileError(
                    f"{where} {name}={value!r:.40}, compared in a condition, {exc}"
                ) from None
        if isinstance(value, str) and any(c in value for c in "'\"\\"):  # either quote ends it
            raise CompileError(
                f"{where} {name}={value!r} holds a quote or backslash: Argo writes it inside "
                "the quotes of a condition (govaluate), which would then fail to parse or compare "
                "another value; pass a value without them, or compile for KFP"
            )
