"""Secrets for a run: read from files, environment variables or inline dicts, and masked in logs.

A :class:`SecretsStore` keeps secret values in memory only. What can be stored with a run is
:meth:`SecretsStore.to_dict`: the kind and source of each secret (a file path, variable names,
inline key names), never a value. :meth:`SecretsStore.mask` hides the values in text such as logs.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import ItemsView, Iterable, KeysView
from typing import Any

from .errors import SecretsError

KINDS = ("file", "env", "inline")
MIN_MASK_LENGTH = 3  # shorter values would mask ordinary words and digits
MASK = "***"


class SecretsStore:
    """Secret values gathered from sources; later sources override earlier ones.

    Example:
        >>> store = SecretsStore().add_source("inline", {"TOKEN": "s3cr3t"})
        >>> store.mask("token is s3cr3t")
        'token is ***'
    """

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._sources: list[dict[str, Any]] = []
        self._missing: list[str] = []
        self._pattern: re.Pattern[str] | None = None
        self._longest = 0  # the longest secret value (masked ones are at least MIN_MASK_LENGTH)
        self._pattern_stale = False

    # -- sources ---------------------------------------------------------------------------

    def add_source(self, kind: str, source: Any) -> SecretsStore:
        """Read the secrets of one source into the store.

        Args:
            kind: ``'file'`` (a path to ``KEY=VALUE`` lines), ``'env'`` (variable names, comma
                separated or a list, read from the environment now) or ``'inline'`` (a dict, or
                its JSON / Python literal text).
            source: the path, names or dict.

        Returns:
            The store, so calls can be chained.

        Raises:
            SecretsError: on an unknown kind, a missing file or a malformed source.
        """
        name = kind.strip().lower() if isinstance(kind, str) else kind
        if name == "file":
            path = os.fspath(source) if source is not None else ""
            values = _read_secrets_file(path)
            self._sources.append({"kind": "file", "source": path})
        elif name == "env":
            names = _env_names(source)
            values = {var: os.environ[var] for var in names if var in os.environ}
            self._missing.extend(var for var in names if var not in os.environ)
            self._sources.append({"kind": "env", "source": ",".join(names)})
        elif name == "inline":
            values = _inline_values(source)
            self._sources.append({"kind": "inline", "source": None, "keys": list(values)})
        else:
            raise SecretsError(f"unknown secrets kind {kind!r}; use one of {', '.join(KINDS)}")
        self._values.update(values)
        self._missing = [key for key in self._missing if key not in self._values]
        self._pattern_stale = True
        return self

    @classmethod
    def from_sources(cls, sources: Iterable[dict[str, Any]] | None) -> SecretsStore:
        """Rebuild a store from :meth:`to_dict` output or a task's ``secret_sources``.

        An inline source whose ``source`` holds the values (a task spec kept in memory) is read
        again; one stored without values (``'source': None``) records its keys as missing.

        Args:
            sources: dicts with ``kind`` and ``source`` (and ``keys`` for stored inline sources).

        Returns:
            A new store.

        Raises:
            SecretsError: when an entry is not such a dict, or its source cannot be read.
        """
        store = cls()
        for i, entry in enumerate(sources or []):
            if not isinstance(entry, dict) or "kind" not in entry:
                raise SecretsError(
                    f"secrets source {i} must be a dict with 'kind' and 'source', "
                    f"got {type(entry).__name__}"
                )
            if entry["kind"] == "inline" and entry.get("source") is None:
                keys = [str(key) for key in entry.get("keys") or []]
                store._sources.append({"kind": "inline", "source": None, "keys": keys})
                store._missing.extend(key for key in keys if key not in store._values)
                continue
            store.add_source(entry["kind"], entry.get("source"))
        return store

    def to_dict(self) -> list[dict[str, Any]]:
        """Describe the sources in a form safe to store: paths, names and keys, never values.

        Returns:
            One dict per source, e.g. ``{'kind': 'file', 'source': 'secrets.env'}``,
            ``{'kind': 'env', 'source': 'A,B'}`` or
            ``{'kind': 'inline', 'source': None, 'keys': ['A', 'B']}``.
        """
        return [
            {**entry, "keys": list(entry["keys"])} if "keys" in entry else dict(entry)
            for entry in self._sources
        ]

    @property
    def missing_keys(self) -> list[str]:
        """Keys a source named but could not provide (unset variables, stored inline keys)."""
        return list(self._missing)

    # -- mapping-like access ---------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """Return the secret ``key``, or ``default`` when no source provided it."""
        return self._values.get(key, default)

    def has(self, key: str) -> bool:
        """Return whether a source provided ``key``."""
        return key in self._values

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> KeysView[str]:
        """Return the secret names."""
        return self._values.keys()

    def items(self) -> ItemsView[str, str]:
        """Return ``(name, value)`` pairs; keep them out of logs and stored records."""
        return self._values.items()

    def values(self) -> set[str]:
        """Return the set of secret values, for code that masks text on its own."""
        return set(self._values.values())

    # -- masking ---------------------------------------------------------------------------

    def mask(self, text: str) -> str:
        """Replace every secret value of at least 3 characters in ``text`` with ``***``.

        Longer values are replaced first, so a value containing another is hidden whole.

        Args:
            text: any text, e.g. a log line.

        Returns:
            The text with the values hidden; ``text`` itself when there is nothing to hide.
        """
        if not self._values or not text:
            return text
        pattern = self._compiled()
        if pattern is None or not isinstance(text, str):
            return text
        return pattern.sub(MASK, text)

    def mask_stream(self, text: str, final: bool = False) -> tuple[str, str]:
        """Mask a piece of a stream that may continue (a log written in several chunks).

        A secret printed in two halves must not be stored in either, so the end of ``text``
        that could be the start of a secret (up to the longest value minus one character, moved
        back to the start of a value that straddles it) is kept back: prepend it to the next
        chunk. With ``final`` everything is masked and nothing is kept.

        Returns:
            ``(masked head, raw tail)``.
        """
        pattern = self._compiled()
        if pattern is None or not text:
            return text, ""
        if final:
            return pattern.sub(MASK, text), ""
        cut = max(0, len(text) - (self._longest - 1))
        for match in pattern.finditer(text):  # from the start: matches never overlap
            if match.end() > cut:
                cut = min(cut, match.start())
                break
        return pattern.sub(MASK, text[:cut]), text[cut:]

    def _compiled(self) -> re.Pattern[str] | None:
        if self._pattern_stale:
            self._pattern = _mask_pattern(self._values.values())
            self._longest = max((len(v) for v in self._values.values()), default=0)
            self._pattern_stale = False
        return self._pattern

    def __repr__(self) -> str:
        kinds = ", ".join(entry["kind"] for entry in self._sources)
        return f"SecretsStore(sources=[{kinds}], keys={sorted(self._values)!r})"


def safe_secret_source(source: dict[str, Any]) -> dict[str, Any]:
    """Describe a secrets source without its values (inline dicts keep key names only)."""
    kind, value = source.get("kind"), source.get("source")
    if kind == "inline":
        keys = source.get("keys")
        if keys is None:
            store = SecretsStore()
            store.add_source("inline", value)
            keys = sorted(store.keys())
        return {"kind": "inline", "source": None, "keys": list(keys)}
    return {"kind": kind, "source": value}


def _mask_pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    hidden = sorted({v for v in values if len(v) >= MIN_MASK_LENGTH}, key=len, reverse=True)
    if not hidden:
        return None
    # An alternation tries its branches in order, so longest-first hides overlapping values whole.
    return re.compile("|".join(re.escape(value) for value in hidden))


def _read_secrets_file(path: str) -> dict[str, str]:
    if not path or not os.path.isfile(path):
        raise SecretsError(f"secrets file {path!r} does not exist (with_secrets('file', path))")
    try:
        with open(path, encoding="utf-8-sig") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        # The exception text may quote file bytes, so name only its type.
        raise SecretsError(f"cannot read secrets file {path!r} ({type(exc).__name__})") from None
    values: dict[str, str] = {}
    for line_no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not _is_env_name(key):
            # Never quote the line: it may hold a secret.
            raise SecretsError(
                f"secrets file {path!r} line {line_no} is not KEY=VALUE "
                "(blank lines and lines starting with # are skipped)"
            )
        values[key] = _unquote(value.strip())
    return values


def _is_env_name(key: str) -> bool:
    return not any(ch.isspace() for ch in key)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in ("'", '"'):
        return value[1:-1]
    return value


def _env_names(source: Any) -> list[str]:
    if isinstance(source, str):
        parts: Iterable[Any] = source.split(",")
    elif isinstance(source, (list, tuple, set)):
        parts = source
    else:
        raise SecretsError(
            "env secrets need variable names, comma separated or a list "
            f"(e.g. with_secrets('env', 'API_KEY,DB_PASSWORD')), got {type(source).__name__}"
        )
    names: list[str] = []
    for part in parts:
        name = str(part).strip()
        if name and name not in names:
            names.append(name)
    return names


def _inline_values(source: Any) -> dict[str, str]:
    data = source
    if isinstance(source, str):
        try:
            data = json.loads(source)
        except ValueError:
            try:
                data = ast.literal_eval(source)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                # Never quote the text: it holds secrets.
                raise SecretsError(
                    "inline secrets text is neither JSON nor a Python dict literal "
                    "(e.g. with_secrets('inline', {'API_KEY': '...'}))"
                ) from None
    if not isinstance(data, dict):
        raise SecretsError(
            f"inline secrets must be a dict of names to values, got {type(data).__name__} "
            "(e.g. with_secrets('inline', {'API_KEY': '...'}))"
        )
    return {
        str(key): value if isinstance(value, str) else str(value)
        for key, value in data.items()
        if value is not None  # str(None) would mask every 'None' in the logs
    }
