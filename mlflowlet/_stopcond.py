"""Stop conditions of a sweep (``"accuracy >= 0.9 and loss < 0.1"``): parsed, never evaluated.

Part of :mod:`mlflowlet.hyper` (which re-exports :func:`parse_stop_condition`); kept apart to keep
that module small.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any

from .errors import HyperParamError

_STOP_EXAMPLE = '"accuracy >= 0.9 and loss < 0.1"'


def is_number(value: Any) -> bool:
    """Return whether ``value`` is a real number (not a bool, not NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not math.isnan(value)


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>>=|<=|==|!=|>|<)
      | (?P<conj>&&|\|\||&|\|)
      | (?P<str>"[^"]*"|'[^']*')
      | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
      | (?P<word>[A-Za-z_][\w.\-/]*)
    )""",
    re.VERBOSE,
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_CONJ = {"&&": "and", "&": "and", "||": "or", "|": "or", "and": "and", "or": "or"}
_Comparison = tuple[str, str, Any]  # (result key, operator, expected value)


def _stop_error(expr: str, reason: str) -> HyperParamError:
    return HyperParamError(
        f"bad stop condition {expr!r}: {reason}; write it like {_STOP_EXAMPLE} "
        "(result OP number or 'string', OP one of >= <= > < == !=, joined by and/or)"
    )


def _tokenize(expr: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos, end = 0, len(expr.rstrip())
    while pos < end:
        match = _TOKEN.match(expr, pos)
        if not match:
            raise _stop_error(expr, f"unexpected text at {expr[pos:].strip()[:20]!r}")
        pos, kind = match.end(), match.lastgroup or ""
        text = match.group(kind)
        if kind in ("conj", "word") and text.lower() in _CONJ:
            tokens.append(("conj", _CONJ[text.lower()]))
        elif kind == "num":
            tokens.append(("value", float(text) if re.search(r"[.eE]", text) else int(text)))
        elif kind == "str":
            tokens.append(("value", text[1:-1]))
        else:
            tokens.append((kind, text))
    return tokens


def _parse_stop(expr: str) -> list[list[_Comparison]]:
    """Parse into OR-groups of AND-ed comparisons (``and`` binds tighter than ``or``)."""
    tokens = _tokenize(expr)
    if not tokens:
        raise _stop_error(expr, "it is empty")
    groups: list[list[_Comparison]] = [[]]
    for start in range(0, len(tokens), 4):
        part = tokens[start : start + 4]
        kinds = [kind for kind, _ in part[:3]]
        # A bare word after the operator compares as a string.
        if kinds[:2] != ["word", "op"] or len(part) < 3 or kinds[2] not in ("value", "word"):
            shown = " ".join(str(text) for _, text in part[:3])
            raise _stop_error(expr, f"expected 'result OP value', found {shown!r}")
        groups[-1].append((part[0][1], part[1][1], part[2][1]))
        if len(part) == 4:
            if part[3][0] != "conj" or start + 4 == len(tokens):
                raise _stop_error(expr, f"expected and/or before the end, found {part[3][1]!r}")
            if part[3][1] == "or":
                groups.append([])
    return groups


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if isinstance(expected, (int, float)):
        if isinstance(actual, str):
            try:
                actual = float(actual)
            except ValueError:
                return False
        if not is_number(actual):
            return False
    elif not isinstance(actual, str):
        if op not in ("==", "!="):
            return False
        actual = str(actual)
    try:
        return bool(_OPS[op](actual, expected))
    except TypeError:
        return False


def parse_stop_condition(expr: str) -> Callable[[dict[str, Any]], bool]:
    """Compile a stop condition into a predicate over an iteration's results.

    Supports ``key OP value`` with OP in ``>= <= > < == !=`` and value a number or a quoted
    string, joined by ``and`` / ``or`` (or ``&`` / ``|``); ``and`` binds tighter than ``or``.
    Nothing is evaluated as Python.

    Args:
        expr: e.g. ``"accuracy>=0.9"`` or ``"loss < 0.1 and accuracy > 0.8"``.

    Returns:
        A function of a results dict that is true when the condition holds; a result key
        missing from the dict makes its comparison false.

    Raises:
        HyperParamError: when the expression is malformed.
    """
    if not isinstance(expr, str):
        raise _stop_error(repr(expr), f"expected a string, got {type(expr).__name__}")
    groups = _parse_stop(expr)

    def condition(results: dict[str, Any]) -> bool:
        results = results or {}
        return any(
            all(key in results and _compare(results[key], op, want) for key, op, want in group)
            for group in groups
        )

    condition.__doc__ = f"Stop condition {expr!r}."
    return condition
