"""Look after the stored artifact versions: full verification and garbage collection.

:func:`verify_artifacts` compares every recorded version's bytes with its sha256 (what
``mlflowlet doctor`` runs). :func:`collect_garbage` (``mlflowlet gc``) removes what deleted runs
leave behind: ``del_run``/``del_runs`` delete run records only, so the artifact versions those
runs produced stay listed until ``gc`` deletes their records and the files they own. A file is
removed only when mlflowlet wrote it for that version (``owned``) and no remaining version or
run record references it (a sweep parent's link, a cached pipeline step, a record of the same
file made elsewhere); files recorded
where they are (``upload=False``, existing targets) are never removed; a file that another
version still references (a sweep parent's link) goes with the last version referencing it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflowlet.datastore._urls import is_local, local_path
from mlflowlet.errors import DataNotFoundError, DataStoreError, NotFoundError

if TYPE_CHECKING:
    from ..db.base import RunDB


@dataclass
class VerifyReport:
    """What :func:`verify_artifacts` found.

    Attributes:
        checked: how many stored objects had their sha256 compared.
        unverifiable: versions with no recorded sha256 (linked objects), by location.
        problems: one line per version whose bytes are missing or differ from the record.
    """

    checked: int = 0
    unverifiable: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def verify_artifacts(
    db: RunDB | None = None, project: str = "", secrets: Any = None
) -> VerifyReport:
    """Compare every recorded artifact version of ``project`` (all when empty) with its sha256.

    Each stored object is read once, however many versions (links) point at it.

    Args:
        db: the run DB (default: ``get_run_db()``).
        project: the project; empty for every project.
        secrets: credentials for remote stores (else the environment's).
    """
    from mlflowlet.datastore import _integrity
    from mlflowlet.datastore.registry import get_store

    db = _db(db)
    report = VerifyReport()
    seen: dict[str, str] = {}  # uri -> the problem found there ('' when none)
    for art in db.list_artifacts(project=project, tag="*"):
        uri = str(art.get("uri") or "")
        if not uri:
            continue
        if not art.get("hash"):
            report.unverifiable.append(f"{art['key']} {_integrity.version_of(art)}: {uri}")
            continue
        if uri not in seen:
            seen[uri] = _verify_one(art, uri, get_store, _integrity, secrets)
            report.checked += 1
        if seen[uri]:
            where = f"project {art.get('project')!r}: " if not project else ""
            report.problems.append(f"{where}{seen[uri]}")
    return report


def artifact_problems(db: RunDB, project: str = "") -> list[str]:
    """Return one line per damaged or missing artifact version (the ``doctor`` check)."""
    return verify_artifacts(db, project).problems


def _verify_one(art: dict[str, Any], uri: str, get_store: Any, integrity: Any, secrets: Any) -> str:
    try:
        if is_local(uri):
            path = local_path(uri)
            is_dir = art.get("format") == "dir"  # a directory version (datastore._dirtree)
            if not (os.path.isdir(path) if is_dir else os.path.isfile(path)):
                raise DataNotFoundError(f"no such file '{path}'")
            integrity.verify_file(art, path)
        else:
            integrity.verify_store(art, get_store(uri, secrets), uri)
    except DataNotFoundError:
        return f"artifact {art['key']!r} version {integrity.version_of(art)}: missing at '{uri}'"
    except DataStoreError as exc:  # ArtifactIntegrityError too: the message names it all
        return str(exc)
    return ""


@dataclass
class GarbageReport:
    """What :func:`collect_garbage` removed (or would remove, with ``dry_run``).

    Attributes:
        versions: ``(project, key, version uid, iteration)`` of the records removed.
        files: the files (URLs) removed.
        kept: owned files of removed versions still referenced by another version.
        bytes: the bytes the removed files held (as recorded).
    """

    versions: list[tuple[str, str, str, int]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    bytes: int = 0


def collect_garbage(
    db: RunDB | None = None, project: str = "", dry_run: bool = False, secrets: Any = None
) -> GarbageReport:
    """Remove the artifact versions whose producing run was deleted, and the files they own.

    Args:
        db: the run DB (default: ``get_run_db()``).
        project: only versions of this project (references from every project still count).
        dry_run: report what would be removed; remove nothing.
        secrets: credentials for remote stores (else the environment's).

    Returns:
        A :class:`GarbageReport`.
    """
    db = _db(db)
    every = list(db.list_artifacts(tag="*"))
    alive: dict[tuple[str, str, int], bool] = {}
    orphans = [
        art
        for art in every
        if (not project or art.get("project") == project) and _orphaned(db, art, alive)
    ]
    gone = {id(art) for art in orphans}
    referenced = {art.get("uri") for art in every if id(art) not in gone}
    for run in db.list_runs(iter=True, sort=False):  # e.g. a cached step reuses another's files
        referenced.update(a.get("uri") for a in (run.get("status") or {}).get("artifacts") or [])
    report = GarbageReport()
    files: dict[str, dict[str, Any]] = {}
    for art in orphans:
        key = (art.get("project", ""), art["key"], art["uid"], int(art.get("iteration") or 0))
        report.versions.append(key)
        uri = art.get("uri")
        if art.get("owned") and uri and uri in referenced:
            report.kept.append(uri)
        elif art.get("owned") and uri:
            files.setdefault(uri, art)
    report.kept = sorted(set(report.kept))
    if dry_run:
        report.files = sorted(files)
        report.bytes = sum(int(a.get("size") or 0) for a in files.values())
        return report
    for project_, name, uid, it in report.versions:  # records first: a crash leaves a file
        try:
            db.del_artifact(name, project=project_, uid=uid, iter=it)
        except NotFoundError:  # removed meanwhile
            pass
    for uri, art in sorted(files.items()):
        if _remove(uri, art, secrets):
            report.files.append(uri)
            report.bytes += int(art.get("size") or 0)
    return report


def _db(db: RunDB | None) -> RunDB:
    if db is None:
        from mlflowlet.db import get_run_db

        db = get_run_db()
    return db


def _orphaned(db: RunDB, art: dict[str, Any], alive: dict[tuple[str, str, int], bool]) -> bool:
    """Return whether the run that recorded ``art`` (its uid and iteration) is gone."""
    uid = str((art.get("producer") or {}).get("uid") or "")
    if not uid:
        return False  # stored outside a run: nothing says when it is garbage
    owner = (str(art.get("project") or ""), uid, int(art.get("iteration") or 0))
    if owner not in alive:
        try:
            db.read_run(uid, project=owner[0], iter=owner[2])
            alive[owner] = True
        except NotFoundError:
            alive[owner] = False
    return not alive[owner]


def _remove(uri: str, art: dict[str, Any], secrets: Any) -> bool:
    """Delete the file at ``uri``, and the run directories it leaves empty; True when removed."""
    if not is_local(uri):
        from mlflowlet.datastore.registry import get_store

        store = get_store(uri, secrets)
        delete = getattr(store, "delete", None)
        if delete is None:
            return False
        walk = getattr(store, "walk", None)
        if art.get("format") == "dir" and walk is not None:  # every object under its prefix
            for rel in walk(uri):
                delete(f"{uri.rstrip('/')}/{rel}")
            return True
        delete(uri)
        return True
    path = local_path(uri)
    try:
        if art.get("format") == "dir" and os.path.isdir(path) and not os.path.islink(path):
            import shutil

            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        return False
    run_uid = str((art.get("producer") or {}).get("uid") or "")
    parent = os.path.dirname(path)
    while run_uid and run_uid in parent.split(os.sep):  # never above the run's own directory
        try:
            os.rmdir(parent)
        except OSError:  # not empty: something else still lives there
            break
        parent = os.path.dirname(parent)
    return True
