"""Param files of a sweep: a CSV or JSON file with one row of parameters per iteration.

Part of :mod:`mlflowlet.hyper` (which re-exports :func:`read_param_file`); kept apart to keep
that module small.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
from typing import Any

from .errors import HyperParamError


def read_param_file(path: str) -> list[dict[str, Any]] | dict[str, list[Any]]:
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


def _read_json_params(path: str, text: str) -> list[dict[str, Any]] | dict[str, list[Any]]:
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


def _read_csv_params(path: str, text: str) -> list[dict[str, Any]]:
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
