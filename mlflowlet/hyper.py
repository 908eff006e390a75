"""Hyper-parameter expansion, param files, best-iteration selection and the iteration table.

Pure functions, standard library only: a runtime calls :func:`expand_iterations` to turn a task's
``hyper_params`` / ``param_file`` into one params dict per child run, :func:`select_best` to pick
the winner by a selector such as ``'min.loss'``, :func:`parse_stop_condition` to stop early, and
:func:`iteration_table` / :func:`table_to_csv` to summarise the children on the parent run.
"""

from __future__ import annotations

import ast
import csv
import io
import itertools
import json
import math
import operator
import os
import random
import re
from collections.abc import Callable, Iterator
from typing import Any

from .errors import HyperParamError

STRATEGIES = ("grid", "list", "random")
DEFAULT_RANDOM_ITERATIONS = 10
_STOP_EXAMPLE = '"accuracy >= 0.9 and loss < 0.1"'


def expand_iterations(
    hyper_params: dict | None,
    strategy: str | None = "grid",
    param_file: str | None = None,
    max_iterations: int | None = None,
    seed: int | None = None,
) -> list[dict]:
    """Expand hyper-parameters or a param file into one params dict per iteration.

    Iteration 1 is element 0 of the returned list. :func:`iter_iterations` yields the same
    dicts one at a time (a sweep of a million iterations never holds them all).

    Args:
        hyper_params: parameter name -> list of values, e.g. ``{'lr': [0.1, 0.01]}``.
        strategy: ``'grid'`` (cartesian product, last key varies fastest), ``'list'`` (the lists
            zipped) or ``'random'`` (``max_iterations`` random picks, default 10). ``None`` or
            ``''`` means ``'grid'`` for ``hyper_params`` and ``'list'`` for a param file.
        param_file: a CSV (a header of names, one row per iteration) or JSON file (a list of
            dicts, one per iteration, or a dict of lists expanded with ``strategy``).
        max_iterations: the number of random picks, and an upper bound for the other strategies.
        seed: seed of the random strategy, for reproducible picks.

    Returns:
        The params of each iteration; an empty list when there is nothing to expand.

    Raises:
        HyperParamError: on a bad strategy, value, param file, or when both sources are given.
    """
    return list(iter_iterations(hyper_params, strategy, param_file, max_iterations, seed))


def iter_iterations(
    hyper_params: dict | None,
    strategy: str | None = "grid",
    param_file: str | None = None,
    max_iterations: int | None = None,
    seed: int | None = None,
) -> Iterator[dict]:
    """Like :func:`expand_iterations`, but lazily: every check first, then one dict at a time.

    Raises:
        HyperParamError: as :func:`expand_iterations`, before the first dict is yielded.
    """
    if hyper_params and param_file:
        raise HyperParamError(
            "give either hyper_params or param_file, not both "
            f"(got hyper-parameters {', '.join(map(str, hyper_params))} and file {param_file!r})"
        )
    if max_iterations is not None and (
        isinstance(max_iterations, bool)
        or not isinstance(max_iterations, int)
        or max_iterations < 1
    ):
        raise HyperParamError(f"max_iterations must be a positive integer, got {max_iterations!r}")
    if param_file:
        source = read_param_file(param_file)
        strategy = _check_strategy(strategy or "list")
        if isinstance(source, list):
            rows = _expand_rows(source, strategy, max_iterations, seed)
            return iter(rows[:max_iterations] if max_iterations else rows)
        hyper_params = source
    else:
        strategy = _check_strategy(strategy or "grid")
    if not hyper_params:
        return iter(())
    if not isinstance(hyper_params, dict):
        raise HyperParamError(
            f"hyper_params must be a dict of lists, got {type(hyper_params).__name__} "
            "(e.g. {'p1': [1, 2, 3]})"
        )
    combos = _expand_values(_check_values(hyper_params), strategy, max_iterations, seed)
    return itertools.islice(combos, max_iterations) if max_iterations else combos


def _expand_values(
    values: dict[str, list], strategy: str, max_iterations: int | None, seed: int | None
) -> Iterator[dict]:
    if strategy == "grid":
        combos: Iterator[tuple] = itertools.product(*values.values())
    elif strategy == "list":
        lengths = {key: len(vals) for key, vals in values.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{key}: {n}" for key, n in lengths.items())
            raise HyperParamError(
                f"strategy 'list' needs lists of equal length, got {shown}; "
                "use strategy 'grid' for every combination"
            )
        combos = zip(*values.values(), strict=True)
    else:
        rng = random.Random(seed)
        count = max_iterations or DEFAULT_RANDOM_ITERATIONS
        combos = (tuple(rng.choice(vals) for vals in values.values()) for _ in range(count))
    keys = list(values)
    return (dict(zip(keys, combo, strict=True)) for combo in combos)


def _check_strategy(strategy: Any) -> str:
    name = strategy.strip().lower() if isinstance(strategy, str) else strategy
    if name not in STRATEGIES:
        raise HyperParamError(
            f"unknown hyper-parameter strategy {strategy!r}; use one of {', '.join(STRATEGIES)}"
        )
    return name


def _check_values(hyper_params: dict) -> dict[str, list]:
    out: dict[str, list] = {}
    for key, vals in hyper_params.items():
        if not isinstance(vals, (list, tuple)):
            raise HyperParamError(
                f"hyper-parameter {key!r} must be a list of values, got "
                f"{type(vals).__name__} {vals!r} (e.g. {{{key!r}: [1, 2, 3]}})"
            )
        if not vals:
            raise HyperParamError(
                f"hyper-parameter {key!r} has an empty list of values (e.g. {{{key!r}: [1, 2, 3]}})"
            )
        out[str(key)] = list(vals)
    return out


def _expand_rows(
    rows: list[dict], strategy: str, max_iterations: int | None, seed: int | None
) -> list[dict]:
    # Rows of a param file are iterations as they stand; 'random' samples rows instead.
    if strategy == "random":
        rng = random.Random(seed)
        count = max_iterations or DEFAULT_RANDOM_ITERATIONS
        return [dict(rng.choice(rows)) for _ in range(count)]
    return [dict(row) for row in rows]


def read_param_file(path: str) -> list[dict] | dict[str, list]:
    """Read a CSV or JSON param file.

    A CSV has a header row of parameter names and one row per iteration; each cell is parsed as a
    Python or JSON literal (``0.1``, ``[1, 2]``, ``true``) and kept as a string otherwise. A JSON
    file holds a list of dicts (one per iteration) or a dict of lists (hyper-parameters).

    Args:
        path: a local file path; ``.json`` files are read as JSON, ``.csv`` as CSV, any other
            name as JSON when it starts with ``[`` or ``{`` and as CSV otherwise.

    Returns:
        A list of row dicts, or a dict of lists.

    Raises:
        HyperParamError: when the file is missing, empty or malformed.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise HyperParamError(f"param file {path!r} does not exist")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise HyperParamError(f"cannot read param file {path!r}: {exc}") from exc
    ext = os.path.splitext(path)[1].lower()
    if ext == ".json" or (ext != ".csv" and text.lstrip()[:1] in ("[", "{")):
        return _read_json_params(path, text)
    return _read_csv_params(path, text)


def _read_json_params(path: str, text: str) -> list[dict] | dict[str, list]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HyperParamError(f"param file {path!r} is not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        if not data:
            raise HyperParamError(f"param file {path!r} holds an empty object")
        return data
    if isinstance(data, list):
        if not data:
            raise HyperParamError(f"param file {path!r} holds no rows")
        for i, row in enumerate(data, start=1):
            if not isinstance(row, dict):
                raise HyperParamError(
                    f"param file {path!r}: item {i} is a {type(row).__name__}, expected an object "
                    '(e.g. [{"p1": 1, "p2": "a"}, {"p1": 2, "p2": "b"}])'
                )
        return data
    raise HyperParamError(
        f"param file {path!r} must hold a list of objects or an object of lists, "
        f"got {type(data).__name__}"
    )


def _read_csv_params(path: str, text: str) -> list[dict]:
    lines = [row for row in csv.reader(io.StringIO(text))]
    numbered = [(n, row) for n, row in enumerate(lines, start=1) if any(c.strip() for c in row)]
    if not numbered:
        raise HyperParamError(f"param file {path!r} is empty; expected a header row of names")
    header = [name.strip() for name in numbered[0][1]]
    if not all(header):
        raise HyperParamError(f"param file {path!r} has an empty column name in its header row")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise HyperParamError(f"param file {path!r} repeats columns: {', '.join(duplicates)}")
    rows = []
    for line_no, cells in numbered[1:]:
        if len(cells) != len(header):
            raise HyperParamError(
                f"param file {path!r} line {line_no} has {len(cells)} cells, "
                f"the header has {len(header)}"
            )
        rows.append({name: _parse_cell(cell) for name, cell in zip(header, cells, strict=True)})
    if not rows:
        raise HyperParamError(f"param file {path!r} has a header but no rows")
    return rows


def _parse_cell(cell: str) -> Any:
    text = cell.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)  # true / false / null
    except ValueError:
        return text


def parse_selector(selector: str) -> tuple[str, str]:
    """Split a selector into its direction and result key.

    ``'min.loss'`` gives ``('min', 'loss')``, ``'max.accuracy'`` and bare ``'accuracy'`` give
    ``('max', 'accuracy')``, and ``'min.val.loss'`` gives ``('min', 'val.loss')``.

    Args:
        selector: ``[min.|max.]<result key>``.

    Returns:
        ``(direction, key)`` with direction ``'min'`` or ``'max'``.

    Raises:
        HyperParamError: when the selector is empty or names no key.
    """
    if not isinstance(selector, str) or not selector.strip():
        raise HyperParamError(
            f"selector must name a result, got {selector!r} (e.g. 'min.loss' or 'max.accuracy')"
        )
    text = selector.strip()
    head, dot, rest = text.partition(".")
    if head.lower() in ("min", "max"):
        key = rest.strip()
        if not key:
            raise HyperParamError(
                f"selector {selector!r} names no result; write it like '{head.lower()}.loss'"
            )
        return head.lower(), key
    return "max", text


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not math.isnan(value)


def select_best(candidates: list[tuple[int, dict]], selector: str) -> int | None:
    """Return the iteration whose result is best under ``selector``.

    Args:
        candidates: ``(iteration, results)`` of the successful iterations.
        selector: e.g. ``'min.loss'``, ``'max.accuracy'`` or ``'accuracy'``.

    Returns:
        The best iteration number (the lowest one on a tie); ``None`` when the selector is empty
        or there are no candidates.

    Raises:
        HyperParamError: when no candidate logged the key as a number.
    """
    if not selector or not candidates:
        return None
    direction, key = parse_selector(selector)
    best_iter: int | None = None
    best_value: float = 0.0
    for iteration, results in sorted(candidates, key=lambda c: c[0]):
        value: Any = (results or {}).get(key)
        if not _is_number(value):
            continue
        if (
            best_iter is None
            or (direction == "min" and value < best_value)
            or (direction == "max" and value > best_value)
        ):
            best_iter, best_value = iteration, value
    if best_iter is None:
        logged: dict[str, None] = {}
        for _, results in candidates:
            logged.update(dict.fromkeys(results or {}))
        kind = " as a number" if key in logged else ""
        raise HyperParamError(
            f"selector {selector!r} names result {key!r} that no iteration logged{kind} "
            f"(logged: {', '.join(map(str, logged)) or 'nothing'})"
        )
    return best_iter


# -- stop conditions: parsed into comparisons, never eval -------------------------------------

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
        if not _is_number(actual):
            return False
    elif not isinstance(actual, str):
        if op not in ("==", "!="):
            return False
        actual = str(actual)
    try:
        return bool(_OPS[op](actual, expected))
    except TypeError:
        return False


def parse_stop_condition(expr: str) -> Callable[[dict], bool]:
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

    def condition(results: dict) -> bool:
        results = results or {}
        return any(
            all(key in results and _compare(results[key], op, want) for key, op, want in group)
            for group in groups
        )

    condition.__doc__ = f"Stop condition {expr!r}."
    return condition


# -- iteration summary -----------------------------------------------------------------------


def iteration_table(rows: list[dict]) -> list[list]:
    """Summarise child iterations as a table.

    Args:
        rows: one dict per iteration with ``iter`` (int), ``state`` (str), ``params`` (dict)
            and ``results`` (dict).

    Returns:
        A header ``['iter', 'state', 'param.<k>'..., 'output.<k>'...]`` (keys in first-seen
        order over all rows) followed by one row per iteration in iteration order; a cell an
        iteration did not set is ``None``.
    """
    param_keys: dict[str, None] = {}
    result_keys: dict[str, None] = {}
    for row in rows:
        param_keys.update(dict.fromkeys(row.get("params") or {}))
        result_keys.update(dict.fromkeys(row.get("results") or {}))
    header: list = ["iter", "state"]
    header += [f"param.{key}" for key in param_keys]
    header += [f"output.{key}" for key in result_keys]
    table: list[list] = [header]
    for row in sorted(rows, key=lambda r: r.get("iter") or 0):
        params, results = row.get("params") or {}, row.get("results") or {}
        table.append(
            [row.get("iter"), row.get("state")]
            + [params.get(key) for key in param_keys]
            + [results.get(key) for key in result_keys]
        )
    return table


def table_to_csv(table: list[list]) -> str:
    """Render a table (such as :func:`iteration_table`'s) as CSV text, one line per row.

    Args:
        table: rows of cells; ``None`` cells become empty.

    Returns:
        The CSV text.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(table)
    return out.getvalue()


class Best:
    """:func:`select_best`, one iteration at a time: a sweep folds results as they finish.

    Feed :meth:`add` the successful iterations in any order; :meth:`result` gives what
    ``select_best`` gives for all of them (the lowest iteration on a tie), and raises as it does.

    Args:
        selector: e.g. ``'min.loss'``, ``'max.accuracy'`` or ``'accuracy'``.
    """

    def __init__(self, selector: str) -> None:
        self.selector = selector
        self.direction, self.key = parse_selector(selector)
        self.iteration: int | None = None
        self.value: float = 0.0
        self.seen = 0
        self._logged: dict[str, None] = {}

    def add(self, iteration: int, results: dict | None) -> bool:
        """Consider one successful iteration; return whether it is the best so far."""
        self.seen += 1
        results = results or {}
        if len(self._logged) < 1000:
            self._logged.update(dict.fromkeys(results))
        value: Any = results.get(self.key)
        if not _is_number(value):
            return False
        best = self.iteration
        if (
            best is None
            or (self.direction == "min" and value < self.value)
            or (self.direction == "max" and value > self.value)
            or (value == self.value and iteration < best)
        ):
            self.iteration, self.value = iteration, value
            return True
        return False

    def result(self) -> int | None:
        """Return the best iteration (None when nothing was added).

        Raises:
            HyperParamError: when no iteration logged the key as a number.
        """
        if self.iteration is None and self.seen:
            kind = " as a number" if self.key in self._logged else ""
            raise HyperParamError(
                f"selector {self.selector!r} names result {self.key!r} that no iteration "
                f"logged{kind} (logged: {', '.join(map(str, self._logged)) or 'nothing'})"
            )
        return self.iteration
