"""Hyper-parameter sweeps: options, expansion, param files, best-iteration selection, the table.

Pure functions, standard library only. :class:`SweepOptions` holds a sweep's options in one
frozen object; its :meth:`~SweepOptions.iterations` turn a task's ``hyper_params`` /
``param_file`` into one params dict per child run (:func:`expand_iterations`), :func:`select_best`
and :class:`Best` pick the winner by a selector such as ``'min.loss'``,
:func:`parse_stop_condition` stops early (in ``_stopcond.py``), :func:`read_param_file` reads
CSV/JSON rows (in ``_paramfile.py``), and :func:`iteration_table` / :func:`table_to_csv`
summarise the children on the parent run.
"""

from __future__ import annotations

import csv
import io
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._paramfile import read_param_file as read_param_file  # re-exported: public here
from ._stopcond import is_number
from ._stopcond import parse_stop_condition as parse_stop_condition  # re-exported: public here
from .errors import HyperParamError

STRATEGIES = ("grid", "list", "random")
DEFAULT_RANDOM_ITERATIONS = 10


@dataclass(frozen=True)
class SweepOptions:
    """A sweep's options in one frozen object: what to iterate, how far, when to stop, the best.

    A run's spec keeps them as flat fields (``RunSpec.hyper_params``, ``.selector``, ...: the
    wire format); :meth:`of` reads them once, and runtimes, the entrypoint and the CLI iterate
    through :meth:`iterations` (one :func:`iter_iterations` call for all of them). ``None`` is
    "not given".

    Attributes:
        hyper_params: parameter name -> list of values.
        param_file: a CSV/JSON file of parameter rows (instead of ``hyper_params``).
        strategy: ``grid``, ``list`` or ``random`` (``None``: grid, or list for a param file).
        selector: ``'min.loss'`` / ``'max.accuracy'``: how the best iteration is chosen.
        max_iterations: at most this many iterations (the count for ``random``).
        max_errors: stop launching after this many failed iterations.
        stop_condition: stop launching once an iteration's results meet it.
        parallel: iterations run at once (``None``: the runtime's default).
        seed: seed of the ``random`` strategy.
    """

    hyper_params: dict[str, Any] | None = None
    param_file: str | None = None
    strategy: str | None = None
    selector: str | None = None
    max_iterations: int | None = None
    max_errors: int | None = None
    stop_condition: str | None = None
    parallel: int | None = None
    seed: int | None = None

    @classmethod
    def of(cls, spec: Any) -> SweepOptions:
        """Return the options a run's spec (a ``RunSpec``) holds; empty fields are ``None``."""
        return cls(
            hyper_params=spec.hyper_params or None,
            param_file=spec.param_file or None,
            strategy=spec.strategy or None,
            selector=spec.selector or None,
            max_iterations=spec.max_iterations,
            max_errors=spec.max_errors,
            stop_condition=spec.stop_condition or None,
            parallel=spec.parallel,
            seed=spec.seed,
        )

    @property
    def sweeps(self) -> bool:
        """Whether there is anything to iterate (hyper-parameters or a param file)."""
        return bool(self.hyper_params or self.param_file)

    def iterations(self) -> Iterator[dict[str, Any]]:
        """Yield each iteration's params (iteration 1 first), lazily; every check comes first.

        Raises:
            HyperParamError: as :func:`expand_iterations`.
        """
        return iter_iterations(
            self.hyper_params, self.strategy, self.param_file, self.max_iterations, self.seed
        )

    def expand(self) -> list[dict[str, Any]]:
        """Return every iteration's params at once (see :meth:`iterations`)."""
        return list(self.iterations())

    def stop(self) -> Callable[[dict[str, Any]], bool] | None:
        """Return the stop condition as a predicate over results (``None`` without one)."""
        return parse_stop_condition(self.stop_condition) if self.stop_condition else None

    def checked(self) -> SweepOptions:
        """Check the options given (not the iterations: see :meth:`iterations`); return self.

        Raises:
            HyperParamError: ``parallel`` below 1 or ``max_errors`` below 0 (or not whole
                numbers), an unknown strategy, a selector or stop condition that does not parse.
        """
        for name, value, least in (
            ("parallel", self.parallel, 1),
            ("max_errors", self.max_errors, 0),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < least
            ):
                raise HyperParamError(f"{name}={value!r} must be a whole number >= {least}")
        if self.strategy is not None:
            _check_strategy(self.strategy)
        if self.selector is not None:
            parse_selector(self.selector)
        if self.stop_condition:
            parse_stop_condition(self.stop_condition)
        return self


def expand_iterations(
    hyper_params: dict[str, Any] | None,
    strategy: str | None = "grid",
    param_file: str | None = None,
    max_iterations: int | None = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
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
    hyper_params: dict[str, Any] | None,
    strategy: str | None = "grid",
    param_file: str | None = None,
    max_iterations: int | None = None,
    seed: int | None = None,
) -> Iterator[dict[str, Any]]:
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
    values: dict[str, list[Any]], strategy: str, max_iterations: int | None, seed: int | None
) -> Iterator[dict[str, Any]]:
    if strategy == "grid":
        combos: Iterator[tuple[Any, ...]] = itertools.product(*values.values())
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


def _check_values(hyper_params: dict[str, Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
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
        out[str(key)] = vals if isinstance(vals, list) else list(vals)  # no copy of 1M values
    return out


def _expand_rows(
    rows: list[dict[str, Any]], strategy: str, max_iterations: int | None, seed: int | None
) -> list[dict[str, Any]]:
    # Rows of a param file are iterations as they stand; 'random' samples rows instead.
    if strategy == "random":
        rng = random.Random(seed)
        count = max_iterations or DEFAULT_RANDOM_ITERATIONS
        return [dict(rng.choice(rows)) for _ in range(count)]
    return [dict(row) for row in rows]


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


def select_best(candidates: list[tuple[int, dict[str, Any]]], selector: str) -> int | None:
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
        if not is_number(value):
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


# -- iteration summary -----------------------------------------------------------------------


def iteration_table(rows: list[dict[str, Any]]) -> list[list[Any]]:
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
    header: list[Any] = ["iter", "state"]
    header += [f"param.{key}" for key in param_keys]
    header += [f"output.{key}" for key in result_keys]
    table: list[list[Any]] = [header]
    for row in sorted(rows, key=lambda r: r.get("iter") or 0):
        params, results = row.get("params") or {}, row.get("results") or {}
        table.append(
            [row.get("iter"), row.get("state")]
            + [params.get(key) for key in param_keys]
            + [results.get(key) for key in result_keys]
        )
    return table


def table_to_csv(table: list[list[Any]]) -> str:
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

    def add(self, iteration: int, results: dict[str, Any] | None) -> bool:
        """Consider one successful iteration; return whether it is the best so far."""
        self.seen += 1
        results = results or {}
        if len(self._logged) < 1000:
            self._logged.update(dict.fromkeys(results))
        value: Any = results.get(self.key)
        if not is_number(value):
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
