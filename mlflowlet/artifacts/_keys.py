"""Artifact key and relative target path validation."""

from __future__ import annotations

from mlflowlet._names import control_chars, unstorable
from mlflowlet.errors import ArtifactError, PathTraversalError

#: Longest file name (UTF-8 bytes) a key or target path part may have: file systems allow 255,
#: and a version is written through ``.<name>.<12 hex>.tmp`` and may gain ``.vN``.
MAX_NAME_BYTES = 200


def _check_length(name: str, what: str) -> None:
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise ArtifactError(
            f"{what} {name[:40]!r}... is {size} bytes long; file names allow at most "
            f"{MAX_NAME_BYTES} (UTF-8): use a shorter name"
        )


def _check_storable(name: str, what: str) -> None:
    bad = unstorable(name)
    if bad:  # a lone surrogate: an undecodable byte (NUL is a control character, refused first)
        raise ArtifactError(
            f"{what} {name!r} contains {bad}, a byte that is not UTF-8 as Python decodes it "
            "(e.g. from os.listdir), which no run DB can store as text: decode the bytes "
            "yourself, e.g. os.fsencode(name).decode('latin-1')"
        )


def validate_key(key: str) -> str:
    r"""Return ``key`` if it can name an artifact, else raise naming the culprit.

    A key is one file name: it becomes a file in the run's artifact directory and a part of
    ``store://artifacts/<project>/<key>`` references. Refused: empty keys, a path separator
    (``/`` or ``\``; write into a subdirectory with ``target_path='sub/file'``), ``.`` or ``..``,
    NUL and other control characters.

    Args:
        key: the artifact key.

    Raises:
        PathTraversalError: a separator, ``..``, NUL or a control character.
        ArtifactError: an empty key, ``.``, or longer than :data:`MAX_NAME_BYTES`.
    """
    if not isinstance(key, str) or not key.strip():
        raise PathTraversalError(str(key), "an artifact key must be a non-empty file name")
    bad = control_chars(key)
    if bad:
        raise PathTraversalError(key, f"artifact keys cannot contain control characters ({bad})")
    _check_storable(key, "artifact key")
    if "/" in key or "\\" in key or _drive(key):
        raise PathTraversalError(
            key,
            "an artifact key is one file name, without '/', '\\' or a drive; to write into a "
            "subdirectory pass target_path='sub/file'",
        )
    if key.strip() == "..":
        raise PathTraversalError(key, "'..' cannot be an artifact key")
    if key.strip() == ".":
        raise ArtifactError(f"artifact key {key!r} must name a file, not a directory")
    _check_length(key, "artifact key")
    return key


def validate_tag(tag: str) -> str:
    """Return ``tag`` if a version can be found by it again, else raise naming the culprit.

    ``'*'`` lists every tag, and ``store://artifacts/<project>/<key>:<tag>@<uid>`` splits at
    ``/`` and ``@``, so a tag that is ``*`` or contains ``/``, ``@`` or a control character would
    name a version no filter or reference reaches.

    Raises:
        ArtifactError: one of the above.
    """
    bad = control_chars(tag)
    if tag.strip() == "*" or "/" in tag or "@" in tag or bad:
        raise ArtifactError(
            f"artifact tag {tag!r} cannot be looked up again ('*' lists every tag; store:// "
            "references split at '/' and '@'): use letters, digits, '-', '_', '.'"
        )
    _check_storable(tag, "artifact tag")
    _check_length(tag, "artifact tag")
    return tag


def validate_relpath(path: str) -> str:
    r"""Return ``path`` if it is a safe relative path (a target path), else raise.

    Refused: empty paths, NUL and control characters, absolute paths (a leading ``/`` or ``\``,
    a drive such as ``C:``), and ``..`` components (with either separator, so ``a\..\..\b``
    cannot escape on Windows either).

    Raises:
        PathTraversalError: the path could leave its root directory.
        ArtifactError: the path names a directory (ends with a separator or ``.``), or a part
            of it is longer than :data:`MAX_NAME_BYTES`.
    """
    if not isinstance(path, str) or not path.strip() or control_chars(path):
        raise PathTraversalError(str(path))
    if path[0] in "/\\" or _drive(path):
        raise PathTraversalError(path)
    parts = path.replace("\\", "/").split("/")
    if any(part.strip() == ".." for part in parts):
        raise PathTraversalError(path)
    if parts[-1].strip() in ("", "."):
        raise ArtifactError(f"target path {path!r} must name a file, not a directory")
    for part in parts:
        _check_length(part, "a part of target path")
    return path


def _drive(path: str) -> bool:
    """Return True when ``path`` starts with a Windows drive (``C:``; drives are ASCII letters)."""
    return len(path) >= 2 and path[1] == ":" and path[0].isascii() and path[0].isalpha()
