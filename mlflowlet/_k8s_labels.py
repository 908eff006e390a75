"""Kubernetes label keys and values: the API server's syntax, checked or sanitised in one place.

A label key is an optional DNS-subdomain prefix and ``/``, then a name of at most 63 characters
(alphanumerics, ``-``, ``_``, ``.``, starting and ending alphanumeric); a value is empty or the
same as such a name. ``owner: Jane Doe`` is refused by the API server, so run labels become pod
labels through :func:`sanitise_labels` (the exact labels stay in the run record), and a label a
user writes into a manifest directly is checked with :func:`check_label`.

Reference: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
"""

from __future__ import annotations

import re

from .errors import ConfigError

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_MAX_NAME, _MAX_PREFIX = 63, 253


def label_value_ok(value: str) -> bool:
    """Return whether ``value`` is a valid label value (empty, or a name of <= 63 chars)."""
    return value == "" or (len(value) <= _MAX_NAME and bool(_NAME.match(value)))


def label_key_ok(key: str) -> bool:
    """Return whether ``key`` is a valid label key (``[prefix/]name``)."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > _MAX_PREFIX or not _PREFIX.match(prefix)):
        return False
    return len(name) <= _MAX_NAME and bool(_NAME.match(name))


def check_label(key: str, value: str, where: str) -> None:
    """Raise ``ConfigError`` naming ``where`` unless ``key: value`` is a valid label.

    Raises:
        ConfigError: the key or the value breaks the API server's label syntax.
    """
    if not label_key_ok(str(key)):
        raise ConfigError(
            f"{where}: label key {key!r} is not valid: [prefix/]name with a name of at most 63 "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    if not label_value_ok(str(value)):
        raise ConfigError(
            f"{where}: label {key}={value!r} is not a valid label value: at most 63 letters, "
            f"digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. "
            f"{sanitise_value(str(value))!r})"
        )


def sanitise_value(value: str) -> str:
    """Return ``value`` made a valid label value (``'Jane Doe'`` -> ``'Jane-Doe'``)."""
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:_MAX_NAME]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", text)


def sanitise_key(key: str) -> str:
    """Return ``key`` made a valid label key (``''`` when nothing valid is left)."""
    prefix, slash, name = key.rpartition("/")
    name = sanitise_value(name)
    if not slash:
        return name
    prefix = re.sub(r"[^a-z0-9.-]+", "-", prefix.lower())[:_MAX_PREFIX].strip(".-")
    if not prefix or not _PREFIX.match(prefix):
        return name
    return f"{prefix}/{name}" if name else ""


def sanitise_labels(labels: dict[str, str], reserved: tuple[str, ...] = ()) -> dict[str, str]:
    """Return ``labels`` with every key and value made valid (empty keys and ``reserved`` dropped).

    Args:
        labels: the labels as recorded (any text).
        reserved: key prefixes (``'mlflowlet.io/'``) or keys that are not the user's to set.
    """
    out: dict[str, str] = {}
    for key, value in labels.items():
        clean = sanitise_key(str(key))
        if not clean or any(
            clean == r or (r.endswith("/") and clean.startswith(r)) for r in reserved
        ):
            continue
        out[clean] = sanitise_value(str(value))
    return out
