"""Artifact key and relative target path validation."""

from __future__ import annotations

from mlflowlet.errors import ArtifactError, PathTraversalError


def validate_key(key: str) -> str:
    r"""Return ``key`` if it is a safe relative path, else raise.

    Refused: empty keys, NUL characters, absolute paths (a leading ``/`` or ``\``, a
    drive such as ``C:``), and ``..`` components (with either separator, so ``a\..\..\b``
    cannot escape on Windows either). The same rule applies to relative target paths.

    Args:
        key: the artifact key or relative target path.

    Raises:
        PathTraversalError: the key could leave its root directory.
        ArtifactError: the key names a directory (ends with a separator or ``.``).
    """
    if not isinstance(key, str) or not key.strip() or "\x00" in key:
        raise PathTraversalError(str(key))
    if key[0] in "/\\" or (len(key) >= 2 and key[1] == ":" and key[0].isalpha()):
        raise PathTraversalError(key)
    parts = key.replace("\\", "/").split("/")
    if any(part.strip() == ".." for part in parts):
        raise PathTraversalError(key)
    if parts[-1].strip() in ("", "."):
        raise ArtifactError(f"artifact key {key!r} must name a file, not a directory")
    return key
