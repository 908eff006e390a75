r"""Text shown on a terminal (control characters made visible) and text stored as a run's log.

A run name, label or artifact key is user data; printed raw, ``\x1b[...`` sequences recolour
or retitle the terminal, ``\r`` overwrites the line, and bidi overrides reorder what is read.
:func:`printable` escapes them the way Python's ``repr`` does (``\x1b``, ``\r``, ``\u202e``)
and leaves every other character, non-ASCII letters included, as it is.
"""

from __future__ import annotations

import re

__all__ = ["LOG_ERRORS", "log_bytes", "printable"]

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


# A run's log is bytes. Output is decoded with ``surrogateescape`` (:data:`LOG_ERRORS`): a byte
# that is not UTF-8 becomes a lone surrogate U+DC80..U+DCFF, which is also what Python makes of
# undecodable bytes in ``os.listdir``, ``sys.argv`` and ``os.environ`` (PEP 383), and turns back
# into that very byte when the log is stored. Only other lone surrogates (U+D800..U+DC7F,
# U+DD00..U+DFFF: no byte stands for them) are stored as their escape ``\udXXX``.
LOG_ERRORS = "surrogateescape"
_OTHER_SURROGATES = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def log_bytes(text: str) -> bytes:
    r"""Return ``text`` as the bytes of a run's log: UTF-8, each lone surrogate made a byte.

    ``'caf\udce9.csv'`` (what ``os.listdir`` gives for the Latin-1 name ``b'caf\xe9.csv'``)
    becomes ``b'caf\xe9.csv'`` again; a surrogate no byte stands for becomes ``\udXXX``. Never
    raises (a log that cannot be encoded would lose the run's record).
    """
    try:
        return text.encode("utf-8", LOG_ERRORS)
    except UnicodeEncodeError:
        escaped = _OTHER_SURROGATES.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
        return escaped.encode("utf-8", LOG_ERRORS)
