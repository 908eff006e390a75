r"""Argo's own expression rules, for the local check: ``depends``, ``when`` and cache keys.

* ``depends`` (``workflow/common/ancestry.go``, evaluated with expr): ``TASK.Result`` terms
  (``Succeeded``, ``Failed``, ``Errored``, ``Skipped``, ``Omitted``, ``Daemoned``), ``&&``,
  ``||``, ``!`` and parentheses; a bare ``TASK`` (and every entry of the older ``dependencies``
  list) means ``(TASK.Succeeded || TASK.Skipped || TASK.Daemoned)``.
* ``when`` (``workflow/controller/steps.go`` ``shouldExecute``): govaluate after substitution.
  Numbers are float64 read without exponents, strings are quoted with ``'`` or ``"`` (either
  ends one) and ``\\`` escapes any character, a quoted string that parses as a date or time is a
  time (compared as Unix seconds), a bare word is a string (Argo turns govaluate variables into
  strings), ``==``/``!=`` compare type and value, ordering needs two numbers or two strings,
  ``&&``/``||``/``!`` need booleans. Anything else fails as it fails in Argo.
* cache keys (``workflow/controller/cache/cache.go``): ``^[a-zA-Z0-9][-a-zA-Z0-9]*$``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from ..errors import ExprError as ExprError  # re-exported: the local engines catch it

CACHE_KEY = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned")
_DEP_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[A-Za-z0-9][-A-Za-z0-9_]*(?:\.[A-Za-z]+)?)")
_TIMES = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z")


# --- depends ---------------------------------------------------------------------------------
def depends_logic(task: dict[str, Any]) -> str:
    """Return the task's ``depends`` expression (``dependencies`` expanded as Argo does)."""
    if task.get("depends"):
        return str(task["depends"])
    return " && ".join(_expand(name) for name in task.get("dependencies", []))


def _expand(name: str) -> str:
    return f"({name}.Succeeded || {name}.Skipped || {name}.Daemoned)"


def depends_tasks(task: dict[str, Any]) -> list[str]:
    """Return the names of the tasks a task depends on (in order of first mention)."""
    names: list[str] = []
    for token in _tokens(depends_logic(task), _DEP_TOKEN):
        if token not in ("(", ")", "&&", "||", "!"):
            name = token.split(".", 1)[0]
            if name not in names:
                names.append(name)
    return names


def _tokens(text: str, pattern: re.Pattern[str]) -> list[str]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        match = pattern.match(text, pos)
        if not match:
            raise ExprError(f"cannot read {text!r} at {text[pos : pos + 10]!r}")
        out.append(match.group(1))
        pos = match.end()
    return out


def eval_depends(task: dict[str, Any], phases: dict[str, str]) -> bool:
    """Evaluate a task's ``depends`` over its dependencies' phases (``Succeeded``...)."""
    tokens = _tokens(depends_logic(task), _DEP_TOKEN)

    def term(token: str) -> bool:
        name, _, result = token.partition(".")
        if not result:
            return any(phases.get(name) == r for r in ("Succeeded", "Skipped", "Daemoned"))
        if result not in RESULTS:
            raise ExprError(f"depends of {task['name']!r}: unknown task result {token!r}")
        return phases.get(name) == result

    return bool(_Parser(tokens, lambda p: term(p.take())).whole()) if tokens else True


class _Parser:
    """``||`` over ``&&`` over ``!``/parentheses/terms, for depends and govaluate alike."""

    def __init__(self, tokens: list[Any], term: Any) -> None:
        self.tokens, self.term, self.pos = tokens, term, 0

    def peek(self) -> Any:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Any:
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expr(self) -> Any:
        value = self.conj()
        while self.peek() == "||":
            self.take()
            value = _logic(value, self.conj(), "||")
        return value

    def whole(self) -> Any:
        value = self.expr()
        if self.peek() is not None:
            raise ExprError(f"unexpected {self.peek()!r}")
        return value

    def conj(self) -> Any:
        value = self.unary()
        while self.peek() == "&&":
            self.take()
            value = _logic(value, self.unary(), "&&")
        return value

    def unary(self) -> Any:
        token = self.peek()
        if token is None:
            raise ExprError("the expression ends too early")
        if token == "!":
            self.take()
            value = self.unary()
            if not isinstance(value, bool):
                raise ExprError(f"! needs a boolean, got {value!r}")
            return not value
        if token == "(":
            self.take()
            value = self.expr()
            if self.take() != ")":
                raise ExprError("unbalanced parentheses")
            return value
        return self.term(self)  # a term reads its own tokens


def _logic(left: Any, right: Any, op: str) -> bool:
    if not isinstance(left, bool) or not isinstance(right, bool):
        raise ExprError(f"{op} needs booleans, got {left!r} and {right!r}")
    return (left and right) if op == "&&" else (left or right)


# --- when (govaluate) ----------------------------------------------------------------------
_OPS = ("==", "!=", "<=", ">=", "<", ">", "&&", "||", "!", "(", ")", "-")


def _time(text: str) -> float | None:
    for fmt in _TIMES:
        try:
            return datetime.strptime(text.replace("Z", "+0000"), fmt).timestamp()
        except ValueError:
            continue
    return None


def when_tokens(expr: str) -> list[Any]:
    """Tokenize a substituted ``when`` as govaluate does (literals become Python values)."""
    out: list[Any] = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c.isspace():
            i += 1
        elif c.isdigit() or c == ".":
            j = i
            while j < len(expr) and (expr[j].isdigit() or expr[j] == "."):
                j += 1
            try:
                out.append(("lit", float(expr[i:j])))
            except ValueError:
                raise ExprError(f"Unable to parse numeric value {expr[i:j]!r}") from None
            i = j
        elif c in "'\"":
            text, i = _quoted(expr, i + 1)
            stamp = _time(text)
            out.append(("lit", stamp if stamp is not None else text))
        elif c.isalpha():
            j = i
            while j < len(expr) and (expr[j].isalnum() or expr[j] in "_."):
                j += 1
            word = expr[i:j]
            if "." in word:
                raise ExprError(f"accessor {word!r} has no value (no parameters in a when)")
            out.append(("lit", {"true": True, "false": False}.get(word, word)))
            i = j
        else:
            op = next((o for o in _OPS if expr.startswith(o, i)), None)
            if op is None:
                raise ExprError(f"Invalid token: {expr[i : i + 5]!r}")
            out.append(op)
            i += len(op)
    return out


def _quoted(expr: str, i: int) -> tuple[str, int]:
    chars: list[str] = []
    while i < len(expr):
        c = expr[i]
        if c == "\\" and i + 1 < len(expr):
            chars.append(expr[i + 1])
            i += 2
        elif c in "'\"":
            return "".join(chars), i + 1
        else:
            chars.append(c)
            i += 1
    raise ExprError("Unclosed string literal")


class _Compare:
    """One govaluate operand or comparison (called by :class:`_Parser` for terms)."""

    def __call__(self, parser: _Parser) -> Any:
        left = self.operand(parser)
        op = parser.peek()
        if op in ("==", "!=", "<", "<=", ">", ">="):
            parser.take()
            return _compare(left, op, self.operand(parser))
        return left

    def operand(self, parser: _Parser) -> Any:
        token = parser.peek()
        if token == "-":
            parser.take()
            value = self.operand(parser)
            if not isinstance(value, float):
                raise ExprError(f"- needs a number, got {value!r}")
            return -value
        if token in ("(", "!"):
            return parser.unary()
        if not isinstance(token, tuple):
            raise ExprError(f"unexpected {token!r}")
        return parser.take()[1]


def _compare(left: Any, op: str, right: Any) -> bool:
    if op in ("==", "!="):
        same = type(left) is type(right) and left == right
        return same if op == "==" else not same
    if not (
        (isinstance(left, float) and isinstance(right, float))
        or (isinstance(left, str) and isinstance(right, str))
    ):
        raise ExprError(f"cannot compare {left!r} and {right!r} with {op} (not two numbers)")
    import operator

    ops = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
    return bool(ops[op](left, right))


def eval_when(expr: str) -> bool:
    """Evaluate a substituted ``when`` expression with govaluate's rules (see the module doc).

    Raises:
        ExprError: the expression does not parse or compares incompatible values (Argo marks
            the task Error).
    """
    tokens = when_tokens(expr)
    value = _Parser(tokens, _Compare()).whole()
    if not isinstance(value, bool):
        raise ExprError(f"when {expr!r} is {value!r}, not a boolean")
    return value


# --- cache keys -----------------------------------------------------------------------------
_KEY_EXPR = re.compile(r"\{\{=sprig\.sha256sum\(toJson\(\[([^\]]*)\]\)\)\}\}")


def memoize_key(template: str, scope: dict[str, str]) -> str:
    r"""Return a memoize key with its ``{{=sprig.sha256sum(toJson([...]))}}`` tag evaluated.

    Only the form the Argo compiler emits is understood; values are joined with Go's
    ``json.Marshal`` escaping (``<``, ``>``, ``&`` as ``\\u003c``...).
    """

    def one(match: re.Match[str]) -> str:
        names = [n.strip() for n in match.group(1).split(",") if n.strip()]
        try:
            values = [scope[name] for name in names]
        except KeyError as exc:
            raise ExprError(f"memoize key: {exc.args[0]} has no value") from None
        text = json.dumps(values, separators=(",", ":"), ensure_ascii=False)
        for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
            text = text.replace(char, code)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    return _KEY_EXPR.sub(one, template)
