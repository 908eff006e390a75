r"""Text shown on a terminal: names and values with control characters made visible.

A run name, label or artifact key is user data; printed raw, ``\x1b[...`` sequences recolour
or retitle the terminal, ``\r`` overwrites the line, and bidi overrides reorder what is read.
:func:`printable` escapes them the way Python's ``repr`` does (``\x1b``, ``\r``, ``\u202e``)
and leaves every other character, non-ASCII letters included, as it is.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 and C1 controls, DEL, line/paragraph separators and the bidi embeddings/overrides/isolates
_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    r"""Return ``text`` with control and bidi-override characters escaped (``\x1b``, ``\n``)."""
    return _CONTROLS.sub(_escape, text) if _CONTROLS.search(text) else text
