"""Project and run names, checked before they become paths, labels or terminal text.

A project name is a directory under the artifact root (``<root>/<project>/<uid>``) and a
Kubernetes label, so it follows DNS-1123 label rules (as MLRun's projects do): at most 63
lowercase letters, digits and ``-``, starting and ending with a letter or digit. A run name may
be any text without a path separator (slash or backslash), ``.``/``..`` alone, NUL or a control
character (which would rewrite a terminal showing it).

Text a run DB keeps in its own columns (run names, label keys and values, metric keys, artifact
keys and tags) must also be storable by every run DB: no NUL (PostgreSQL text cannot hold it) and
no lone surrogate (UTF-8 has none: Python decodes a byte that is not UTF-8, in ``os.listdir``,
``sys.argv`` or ``os.environ``, as one). :func:`check_storable` refuses both, on every backend
alike. Text inside a record's JSON (results, annotations, the error) is stored as it is.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidNameError

_PROJECT = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable(text: str) -> str:
    """Return the characters of ``text`` a run DB column cannot store, escaped ('' if none)."""
    if text.isascii() and "\x00" not in text:
        return ""
    return ", ".join(repr(c) for c in dict.fromkeys(_UNSTORABLE.findall(text)))


def check_storable(text: str, what: str) -> str:
    """Return ``text`` if every run DB can store it in a column, else raise naming it and the fix.

    Raises:
        InvalidNameError: ``text`` holds NUL or a lone surrogate (an undecodable byte).
    """
    bad = unstorable(text)
    if bad:
        nul, surrogate = "\x00" in text, _SURROGATE.search(text) is not None
        why = ["NUL, which PostgreSQL text cannot hold"] if nul else []
        if surrogate:
            why.append(
                "a lone surrogate (Python's decoding of a byte that is not UTF-8, e.g. by "
                "os.listdir), which UTF-8 text cannot hold"
            )
        reason = f"contains {bad}: " + "; ".join(why) + "; no run DB can store it"
        fix = "remove the NUL" if not surrogate else "decode the bytes yourself, e.g. "
        if surrogate:
            fix += "os.fsencode(text).decode('latin-1')" + (", and remove the NUL" if nul else "")
        raise InvalidNameError(what, text, reason, fix)
    return text


def drop_unstorable_rows(metrics: list[list[Any]], artifacts: list[list[Any]]) -> list[str]:
    """Drop the metric and artifact rows whose text no run DB can store; return their names.

    ``metrics`` and ``artifacts`` each hold lists of the same rows (masked and as buffered):
    the first list decides, and the rows at its indices go from every list (each list once).
    """

    def bad(values: Any) -> bool:
        return any(isinstance(v, str) and unstorable(v) for v in values)

    fields = ("key", "tag", "uid", "tree", "kind", "project")
    gone_metrics = {i for i, row in enumerate(metrics[0]) if bad(row[:1])}
    gone_arts = {i for i, a in enumerate(artifacts[0]) if bad(a.get(f) for f in fields)}
    names = [metrics[0][i][0] for i in sorted(gone_metrics)]
    names += [artifacts[0][i]["key"] for i in sorted(gone_arts)]
    pairs = [(rows, gone_metrics) for rows in metrics] + [(rows, gone_arts) for rows in artifacts]
    for rows, gone in {id(rows): (rows, gone) for rows, gone in pairs}.values():
        if gone:
            rows[:] = [row for i, row in enumerate(rows) if i not in gone]
    return names


def control_chars(text: str) -> str:
    """Return the control characters in ``text`` (NUL included), escaped for a message."""
    found = dict.fromkeys(_CONTROL.findall(text))
    return ", ".join(repr(c) for c in found)


def check_project(name: str) -> str:
    """Return ``name`` if it is a valid project name, else raise naming it and the fix.

    Raises:
        InvalidNameError: not a DNS-1123 label (at most 63 of ``a-z``, ``0-9``, ``-``).
    """
    if isinstance(name, str) and _PROJECT.fullmatch(name):
        return name
    text = str(name)
    suggestion = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")
    fix = f"use e.g. {suggestion!r}" if suggestion else "use e.g. 'default'"
    raise InvalidNameError(
        "project name",
        text,
        "is not a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and "
        "ending with a letter or digit)",
        fix,
    )


def check_run_name(name: str, what: str = "run name") -> str:
    """Return ``name`` if it can name a run, else raise naming it and the culprit.

    Raises:
        InvalidNameError: a slash or backslash, ``.`` or ``..`` alone, NUL or a control character,
            a lone surrogate;
            a run name starting with ``~`` (a name filter's "contains").
    """
    if not isinstance(name, str):
        raise InvalidNameError(what, str(name), f"is a {type(name).__name__}, not text")
    if "/" in name or "\\" in name:
        raise InvalidNameError(what, name, "contains a path separator ('/' or '\\')", "use '-'")
    if name in (".", ".."):
        raise InvalidNameError(what, name, "is a path component, not a name")
    if _CONTROL.search(name):
        raise InvalidNameError(what, name, f"contains control characters ({control_chars(name)})")
    check_storable(name, what)
    if name.startswith("~") and what == "run name":  # `--name ~x` means "contains x"
        reason = "starts with '~', which name filters read as 'contains' (del runs --name ~x)"
        raise InvalidNameError(what, name, reason, f"use {name.lstrip('~') or 'run'!r}")
    return name


def check_label_key(key: str) -> str:
    """Return ``key`` if a label filter can select it exactly, else raise naming the culprit.

    A filter (``k``, ``k=v``, ``k!=v``, ``k~=v``) splits at its first ``=`` and strips the key,
    so a key that is empty, has surrounding spaces, contains ``=``, ends with ``!`` or ``~`` or
    holds a control character could never be selected, or would select other runs' labels
    (``del runs -l 'k~=v'`` means "``k`` contains ``v``", not "``k~`` is ``v``").

    Raises:
        InvalidNameError: one of the above.
    """
    if not isinstance(key, str):
        raise InvalidNameError("label key", str(key), f"is a {type(key).__name__}, not text")
    if not key.strip() or key != key.strip():
        raise InvalidNameError("label key", key, "is empty or has surrounding spaces")
    if "=" in key or key.endswith(("!", "~")):
        reason = "contains '=' or ends with '!' or '~' (label filters split there)"
        raise InvalidNameError("label key", key, reason, "use letters, digits, '-', '_', '.'")
    if _CONTROL.search(key):
        reason = f"contains control characters ({control_chars(key)})"
        raise InvalidNameError("label key", key, reason)
    return check_storable(key, "label key")


def label_value(key: str, value: Any) -> str:
    """Return label ``key``'s ``value`` as the text stored, if every run DB can store it.

    Raises:
        InvalidNameError: the text holds NUL or a lone surrogate (names the label and the fix).
    """
    return check_storable(str(value), f"value of label {key!r}")
