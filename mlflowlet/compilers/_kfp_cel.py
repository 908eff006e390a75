"""KFP's condition language, for the local check: the CEL that ``dsl.If`` compiles to.

kfp writes ``inputs.parameter_values['NAME'] OP LITERAL`` terms (``int()`` around integer
parameters, ``double()`` where an integer meets a double, ``!(...)`` for negations) joined by
``&&`` (``kfp/compiler/pipeline_spec_builder.py``); KFP's backend evaluates them with cel-go.
"""

from __future__ import annotations

import re
from typing import Any

from ._argo_expr import ExprError, _Parser, _tokens

_CEL_TOKEN = re.compile(
    r"\s*(inputs\.parameter_values\['[^']*'\]|int\(|double\(|string\(|'[^']*'|"
    r"\d+\.\d*|\d+|true|false|==|!=|<=|>=|<|>|&&|\|\||!|\(|\))"
)


def cel(expr: str, args: dict[str, Any]) -> bool:
    """Evaluate the CEL that ``dsl.If`` emits over the condition task's input values.

    Values are typed as KFP's backend holds them (numbers as doubles); ``int()`` / ``double()``
    cast, comparisons need operands of one type (numbers mix), ``!``, ``&&``, ``||`` need
    booleans. Anything else is an error, as in CEL. So is a condition holding ``{{``: KFP's
    backend passes the task's spec, its condition included, to the driver as an Argo argument,
    whose ``{{...}}`` tags Argo substitutes (``backend/src/v2/compiler/argocompiler``).
    """
    if "{{" in expr:
        raise ExprError(f"CEL {expr!r} holds '{{{{', which Argo substitutes in KFP's task spec")

    def value(token: str) -> Any:
        if token.startswith("inputs.parameter_values["):
            found = args.get(token[len("inputs.parameter_values['") : -2])
            return float(found) if isinstance(found, int) and not isinstance(found, bool) else found
        if token.startswith("'"):
            return token[1:-1]
        if token in ("true", "false"):
            return token == "true"
        return float(token) if "." in token else int(token)

    class Term:
        def __call__(self, parser: Any) -> Any:
            left = self.operand(parser)
            if parser.peek() in ("==", "!=", "<", "<=", ">", ">="):
                op = parser.take()
                return _cel_compare(left, op, self.operand(parser))
            return left

        def operand(self, parser: Any) -> Any:
            token = parser.take()
            if token in ("int(", "double(", "string("):
                inner = self.operand(parser)
                if parser.take() != ")":
                    raise ExprError(f"unbalanced {token}")
                return {"int(": int, "double(": float, "string(": str}[token](inner)
            if token == "(":
                inner = parser.expr()
                parser.take()
                return inner
            if token == "!":
                return not self.operand(parser)
            return value(token)

    try:
        result = _Parser(_tokens(expr, _CEL_TOKEN), Term()).whole()
    except (TypeError, ValueError) as exc:
        raise ExprError(f"CEL {expr!r}: {exc}") from None
    if not isinstance(result, bool):
        raise ExprError(f"CEL {expr!r} is {result!r}, not a boolean")
    return result


def _cel_compare(left: Any, op: str, right: Any) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    if not numbers and type(left) is not type(right):
        raise ExprError(f"no such overload: {type(left).__name__} {op} {type(right).__name__}")
    return bool(
        {
            "==": left == right,
            "!=": left != right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[op]
    )
