"""Helpers shared by the command modules: ``KEY=VALUE`` parsing, output formats, the run DB.

Only typer and the standard library are imported here at module level (``--help`` stays fast).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

STATE: dict[str, Any] = {"verbose": False}
OUTPUT_FORMATS = ("table", "json", "yaml")


def root_callback(
    verbose: Annotated[bool, typer.Option("--verbose", help="tracebacks on errors")] = False,
) -> None:
    """Describe, run and track machine-learning work: one handler, any runtime, every run."""
    STATE["verbose"] = verbose


def usage_error(message: str) -> typer.BadParameter:
    """Return an error for bad usage (exit code 2), to ``raise``."""
    return typer.BadParameter(message)


def parse_pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    """Split ``KEY=VALUE`` options; a missing ``=`` or key is bad usage naming ``flag``."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise usage_error(f"{flag} {item!r} is not KEY=VALUE (e.g. {flag} p1=5)")
        out[key.strip()] = value
    return out


def check_choice(value: str | None, choices: tuple[str, ...], flag: str) -> None:
    """Refuse a value outside ``choices`` as bad usage."""
    if value and value not in choices:
        raise usage_error(f"{flag} {value!r} is not one of {', '.join(choices)}")


def open_db(url: str | None) -> Any:
    """Open the run DB (``--db`` wins over ``MLFLOWLET_DBPATH``; it is also set for children)."""
    from ..db import get_run_db

    if url:
        os.environ["MLFLOWLET_DBPATH"] = url  # handlers and pipelines that open the DB agree
    return get_run_db(url or "")


def to_yaml(data: Any) -> str:
    """Return ``data`` as block YAML."""
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def emit(data: Any, output: str, table: Any = None) -> None:
    """Print ``data`` as JSON, YAML or (with ``table``, a callable returning text) a table."""
    check_choice(output, OUTPUT_FORMATS, "--output")
    if output == "json":  # strict JSON: NaN/infinities as {"$float": ...} (db/_json.py)
        from ..db._json import dumps

        text = dumps(data, indent=2)
    elif output == "yaml" or table is None:
        text = to_yaml(data).rstrip("\n")
    else:
        text = table()
    sys.stdout.write(text + "\n")


def error_line(text: str) -> str:
    """Return the last non-empty line of an error text (a traceback ends with the message)."""
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "unknown error"
