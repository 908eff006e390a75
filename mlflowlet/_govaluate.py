"""Literals of Argo's ``when`` language (govaluate) that compare there as values compare in Python.

Argo substitutes parameters and results into a ``when`` text before govaluate reads it:
numbers are float64 read without exponents, a quoted string that parses as a date is a time,
``==`` needs one type and ordering two numbers or two strings. See :func:`when_literal`.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

WHEN_STR_TAG = "s:"  # every string in an Argo ``when``: govaluate reads no tagged one as a date
WHEN_MAX_INT = 2**53  # govaluate holds numbers as float64: larger integers lose digits


def argo_text(value: Any) -> str:
    """Return a parameter value as Argo carries it: strings as they are, anything else as JSON.

    A finite float is written in positional notation (``1e-07`` as ``0.0000001``, the same
    float read back): Argo substitutes parameters into ``when`` text, where govaluate reads no
    exponent.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return govaluate_literal(value)
    return json.dumps(value)


def when_literal(value: Any, booleans: bool = False) -> str:
    """Return ``value`` as a govaluate literal comparing as it compares in Python, or refuse.

    govaluate compares only two strings or two numbers (float64) by order, ``==`` needs one
    type, and a quoted string that parses as a date is a time. So strings are tagged
    (:data:`WHEN_STR_TAG`, on both sides of every comparison: order and equality are kept, no
    string is a date), numbers written exactly in positional notation, and a boolean is ``1`` /
    ``0`` (Python's ``True == 1``, ``True > 0.5``); with ``booleans`` (a condition comparing it
    with a boolean) it must be one and is ``true`` / ``false``.

    Raises:
        ValueError: a value no literal compares as Python would: ``None``, a list or dict, NaN
            or infinity, an integer beyond 2**53, or (``booleans``) anything but a boolean.
    """
    if booleans or isinstance(value, bool):
        if not isinstance(value, bool):
            raise ValueError(
                f"is {value!r:.60} ({type(value).__name__}), compared with a boolean: Argo "
                "compares a boolean with booleans only; return a bool"
            )
        return ("true" if value else "false") if booleans else str(int(value))
    if isinstance(value, int) and abs(value) > WHEN_MAX_INT:
        raise ValueError(
            f"is {value}, beyond 2**53: Argo compares numbers as float64, which would round "
            "it; compare a smaller number or a string"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"is {value}, which Argo's conditions cannot compare; compare a number")
    if isinstance(value, (int, float, str)):
        return govaluate_literal(WHEN_STR_TAG + value if isinstance(value, str) else value)
    raise ValueError(
        f"is a {type(value).__name__} ({value!r:.60}), which Argo's conditions cannot compare "
        "as Python does; compare a str, int, float or bool"
    )


def govaluate_literal(value: Any) -> str:
    r"""Return ``value`` as a literal of Argo's ``when`` language (govaluate).

    Numbers are written in positional notation (govaluate reads no exponent), strings
    single-quoted with backslash, both quote characters and ``{`` escaped (``\{`` is ``{`` to
    govaluate, and Argo substitutes no ``{{...}}`` tag a string held), booleans ``true`` /
    ``false``; anything else as a quoted JSON text.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return format(Decimal(repr(value)), "f")
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return "'" + re.sub(r"([\\'\"{])", r"\\\1", text) + "'"


NOT_A_STR = "mlflowlet:not-a-str:"  # a KFP string operand for a value that is no string


def kfp_condition_text(value: Any, kind: str) -> str:
    """Return a KFP condition operand's text (a ``kind`` output) comparing as in Python.

    KFP reads the text as ``kind`` (``float``, ``str``, ``bool``) and compares it in CEL. A
    value of another type compares as Python compares it: for a number, a bool is ``1`` / ``0``
    (``True == 1``) and anything else ``NaN`` (equal to no number: ``"1" == 1`` is False); for
    a string, a value that is none is a text no literal equals (``1 == "1"`` is False); for a
    bool, a number equal to ``1`` / ``0`` is ``true`` / ``false``.

    Raises:
        ValueError: another value compared with a bool (KFP's boolean holds no third value).
    """
    number = isinstance(value, (int, float))
    if kind == "float":
        if isinstance(value, bool):
            return "1" if value else "0"
        return json.dumps(value) if number else "NaN"
    if kind == "bool":
        if number and value in (0, 1):
            return "true" if value else "false"
        raise ValueError(
            f"is {type(value).__name__} {value!r:.40}, compared with a bool in a condition, "
            "which KFP cannot compare as Python does; return a bool (annotate the step -> bool)"
        )
    return value if isinstance(value, str) else NOT_A_STR + type(value).__name__
