"""``mlflowlet doctor``: check a run DB, and what it records, for damage.

Each check is a function ``check(target) -> list[str]`` (the problems found, each a line naming
what is wrong and where; or ``(problems, note)`` to add a note to the report) registered under a
name with :func:`register_check`; ``run_checks`` runs them in order and reports each as ``ok``,
``failed`` or ``skipped``. Built in:

- ``db-integrity``: SQLite's ``PRAGMA quick_check`` on the file (opened read-only, so a damaged
  DB is examined as it is), or for PostgreSQL a read of every table and, with the ``amcheck``
  extension, ``bt_index_check`` of every index.
- ``dead-runs``: resolves ``running`` runs whose process is gone (recorded as ``error``).
- ``artifacts``: every recorded artifact version's bytes against its sha256
  (:func:`mlflowlet.artifacts.verify_artifacts`; ``target.project`` narrows it).

A check gets the opened run DB through ``target.db()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, MlflowletError


@dataclass
class Target:
    """What the checks examine: a run DB location, opened on first use by :meth:`db`."""

    url: str
    sqlite_path: str = ""  # set when the location is an SQLite file
    project: str = ""  # checks that walk records look at this project only (empty: all)
    _db: Any = field(default=None, repr=False)

    def db(self) -> Any:
        """Return the run DB (opened once; raises the DB's own error when it cannot open)."""
        if self._db is None:
            from .db import get_run_db

            self._db = get_run_db(self.url, cached=False)
        return self._db


@dataclass
class Finding:
    """The outcome of one check: ``status`` is ``ok``, ``failed`` or ``skipped``."""

    check: str
    status: str
    problems: list[str] = field(default_factory=list)
    note: str = ""


Check = Callable[[Target], Any]  # -> list[str], or (list[str], note)
CHECKS: dict[str, Check] = {}


def register_check(name: str, check: Check) -> None:
    """Add (or replace) a check; checks run in the order they were first registered."""
    CHECKS[name] = check


def open_target(url: str = "", project: str = "") -> Target:
    """Return the check target for a run DB location (default: ``MLFLOWLET_DBPATH``)."""
    from .settings import get_settings

    url = url or get_settings().dbpath
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("", "file", "sqlite"):
        from .db import resolve_db_path

        return Target(url=url, sqlite_path=resolve_db_path(url), project=project)
    return Target(url=url, project=project)


def run_checks(target: Target, only: list[str] | None = None) -> list[Finding]:
    """Run the registered checks (``only`` those named) on ``target``; return their findings.

    ``db-integrity`` runs first: when it finds damage, checks that need to open the DB are
    skipped rather than run on data that cannot be trusted.
    """
    unknown = sorted(set(only or ()) - set(CHECKS))
    if unknown:
        raise ConfigError(f"unknown check(s) {unknown}; available: {', '.join(CHECKS)}")
    findings: list[Finding] = []
    damaged = False
    for name, check in CHECKS.items():
        if only and name not in only:
            continue
        if damaged:
            findings.append(Finding(name, "skipped", note="the run DB is damaged"))
            continue
        note = ""
        try:
            problems = check(target)
        except ConfigError as exc:
            findings.append(Finding(name, "skipped", note=str(exc)))
            continue
        except MlflowletError as exc:
            problems = [str(exc)]
        if isinstance(problems, tuple):
            problems, note = problems
        findings.append(Finding(name, "failed" if problems else "ok", list(problems), note))
        damaged = damaged or (name == "db-integrity" and bool(problems))
    return findings


def _db_integrity(target: Target) -> list[str]:
    if target.sqlite_path:
        from .db.sqlite import check_sqlite_file

        return check_sqlite_file(target.sqlite_path)
    return list(target.db().check_integrity())


def _dead_runs(target: Target) -> list[str]:
    target.db().resolve_dead_runs()  # recorded as error: nothing left for the user to fix
    return []


def _artifacts(target: Target) -> tuple[list[str], str]:
    from .artifacts import verify_artifacts

    report = verify_artifacts(target.db(), project=target.project)
    note = f"{report.checked} stored object(s) verified"
    if report.unverifiable:
        note += f"; {len(report.unverifiable)} version(s) have no sha256 (linked objects)"
    return report.problems, note


register_check("db-integrity", _db_integrity)
register_check("dead-runs", _dead_runs)
register_check("artifacts", _artifacts)
