"""Which files of a source folder go into a build context: ``.dockerignore`` / ``.gitignore`` rules.

Two dialects, as their tools read them:

* ``.dockerignore`` (https://docs.docker.com/build/concepts/context/#dockerignore-files): every
  pattern is relative to the context root (a leading ``/`` is dropped), ``*`` and ``?`` stay
  within one path component, ``**`` spans any number of them, ``!`` re-includes; the last
  matching line wins, and a pattern that matches a folder matches everything in it.
* ``.gitignore`` (https://git-scm.com/docs/gitignore): a pattern without a ``/`` (but for a
  trailing one) matches a name at any depth, one with a ``/`` is relative to the root, a trailing
  ``/`` matches folders only, ``!`` re-includes; a file inside an excluded folder stays excluded.

Whatever the files say, :data:`ALWAYS` is never copied: version control, virtual environments,
caches, mlflowlet's run DB, its artifacts and its own build folders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ALWAYS", "IgnoreRules", "walk_source"]

# folder names never copied (a virtual environment is also recognised by its pyvenv.cfg)
ALWAYS = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
    "mlflowlet-build",
    "node_modules",
)
_RUN_DB = re.compile(r"^mlflowlet\.db(-wal|-shm|-journal)?$")


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _glob_regex(pattern: str) -> str:
    """Translate a glob (``*``, ``?``, ``[...]``, ``**``) into a regex for a ``/``-joined path."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append(f"[{'^' + body[1:] if body[:1] in '!^' else body}]")
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


class IgnoreRules:
    """Rules read from one ignore file; :meth:`excluded` answers for a relative path."""

    def __init__(self, lines: list[str], dialect: str) -> None:
        self.dialect = dialect
        self.rules: list[_Rule] = []
        for raw in lines:
            line = raw.rstrip("\n").rstrip() if dialect == "git" else raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            line = line[1:] if negate else line
            dir_only = dialect == "git" and line.endswith("/")
            line = line.strip("/") if dialect == "docker" else line.rstrip("/")
            if dialect == "docker":
                line = os.path.normpath(line).replace(os.sep, "/") if line else line
                anchored = True
            else:
                anchored = "/" in line
                line = line.lstrip("/")
            if not line or line == ".":
                continue
            prefix = "" if anchored else "(?:.*/)?"
            self.rules.append(_Rule(re.compile(f"^{prefix}{_glob_regex(line)}$"), negate, dir_only))
        self.has_negations = any(r.negate for r in self.rules)

    @classmethod
    def for_folder(cls, folder: Path) -> IgnoreRules | None:
        """Read ``folder/.dockerignore``, else ``folder/.gitignore``; None when neither exists."""
        for name, dialect in ((".dockerignore", "docker"), (".gitignore", "git")):
            path = folder / name
            if path.is_file():
                return cls(path.read_text(encoding="utf-8", errors="replace").splitlines(), dialect)
        return None

    def _last_match(self, rel: str, is_dir: bool) -> bool | None:
        verdict = None
        for rule in self.rules:
            if (is_dir or not rule.dir_only) and rule.regex.match(rel):
                verdict = not rule.negate
        return verdict

    def excluded(self, rel: str, is_dir: bool) -> bool:
        """Return whether ``rel`` (``/``-separated, relative to the folder) is left out."""
        parts = rel.split("/")
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        if self.dialect == "git":  # nothing inside an excluded folder comes back
            if any(self._last_match(p, True) for p in parents):
                return True
            return bool(self._last_match(rel, is_dir))
        verdict = False  # docker: the last line matching the path or one of its parents
        for rule in self.rules:
            candidates = [*parents, rel] if (is_dir or not rule.dir_only) else parents
            if any(rule.regex.match(c) for c in candidates):
                verdict = not rule.negate
        return verdict


def _always_excluded(path: Path, is_dir: bool, skip: set[Path]) -> bool:
    if path in skip:
        return True
    if is_dir:
        if path.name == "artifacts" and (path.parent / "mlflowlet.db").is_file():
            return True  # the default artifact path, beside the run DB
        return path.name in ALWAYS or (path / "pyvenv.cfg").is_file()
    return bool(_RUN_DB.match(path.name)) or path.suffix in (".pyc", ".pyo")


def walk_source(folder: Path, skip: set[Path] | None = None) -> Iterator[tuple[str, Path]]:
    """Yield ``(relative posix path, path)`` of every file to copy, in sorted order.

    Args:
        folder: the source folder.
        skip: absolute paths always left out too (the run DB's folder, the artifact path, the
            build context being written).
    """
    folder = folder.absolute()
    rules = IgnoreRules.for_folder(folder)
    skip = {p.absolute() for p in (skip or set())}

    def visit(current: Path) -> Iterator[tuple[str, Path]]:
        for entry in sorted(current.iterdir(), key=lambda p: p.name):
            is_dir = entry.is_dir() and not entry.is_symlink()
            rel = entry.relative_to(folder).as_posix()
            if _always_excluded(entry, is_dir, skip):
                continue
            if is_dir:
                if rules is not None and rules.excluded(rel, True) and not rules.has_negations:
                    continue  # nothing inside can come back: do not walk it
                yield from visit(entry)
            elif entry.is_file() and not (rules is not None and rules.excluded(rel, False)):
                yield rel, entry

    yield from visit(folder)
