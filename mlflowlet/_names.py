"""Project and run names, checked before they become paths, labels or terminal text.

A project name is a directory under the artifact root (``<root>/<project>/<uid>``) and a
Kubernetes label, so it follows DNS-1123 label rules (as MLRun's projects do): at most 63
lowercase letters, digits and ``-``, starting and ending with a letter or digit. A run name may
be any text without a path separator (slash or backslash), ``.``/``..`` alone, NUL or a control
character (which would rewrite a terminal showing it).
"""

from __future__ import annotations

import re

from .errors import InvalidNameError

_PROJECT = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


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
        InvalidNameError: a slash or backslash, ``.`` or ``..`` alone, NUL or a control character;
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
    return key
