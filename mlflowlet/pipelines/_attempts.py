"""The attempts of a map item that retries: each writes a directory of its own.

The attempts of an item share its uid and iteration (the item is its last attempt), so each
writes under ``<item directory>/attempt-<n>`` (:func:`attempt_dir`): a later attempt never
overwrites the bytes an earlier one recorded. A failed attempt kept as a run of its own
(``_stepexec.keep_failed_attempt``) takes its artifact versions along: they are recorded again
as that run's (their producer, so their version uid, as if it had logged them) and the item's
copies are deleted; a ``latest`` tag another run's version holds stays there.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..artifacts.manager import version_uid
from ..db.base import RunDB, exact_key
from ..errors import NotFoundError
from ..model import RunObject


def attempt_dir(run: RunObject, attempt: int) -> None:
    """Make attempt ``attempt`` of item ``run`` write under ``<item dir>/attempt-<attempt>``."""
    run._attempt_dir = f"attempt-{attempt}"


def rehome_artifacts(
    record: dict[str, Any], uid: str, it: int, db: RunDB
) -> list[tuple[str, dict[str, Any]]]:
    """Re-produce the versions item ``(uid, it)`` logged, as the kept run ``record``'s.

    ``record`` already names the kept run (its new uid, iteration 0); its ``status.artifacts``
    are rewritten in place. Returns ``(the item's version uid, the kept run's version)`` pairs,
    oldest first: the caller stores the versions with the record (one transaction), then
    :func:`drop_item_versions` deletes the item's copies.
    """
    meta = record["metadata"]
    project, new = meta.get("project", ""), meta["uid"]
    moved: list[tuple[str, dict[str, Any]]] = []
    listed = record["status"].get("artifacts") or []
    for i, art in enumerate(listed):
        producer = art.get("producer") or {}
        if producer.get("uid") != uid or producer.get("iteration", 0) != it:
            continue
        tree = art.get("tree") or None
        versions = db.list_artifacts(exact_key(art["key"]), project, "*", tree=tree, iter=it)
        mine = [v for v in versions if (v.get("producer") or {}).get("uid") == uid]
        mine.sort(key=lambda v: v.get("updated") or "")
        for version in mine or [art]:
            moved.append((str(version.get("uid") or ""), _reproduced(version, new)))
        listed[i] = moved[-1][1]
    return moved


def _reproduced(art: dict[str, Any], new: str) -> dict[str, Any]:
    again = dict(art, producer={**(art.get("producer") or {}), "uid": new, "iteration": 0})
    again["iteration"] = 0
    again["uid"] = version_uid(
        again.get("project", ""),
        again["key"],
        new,
        again.get("tree", ""),
        0,
        again.get("hash") or again.get("uri", ""),
    )
    return again


def drop_item_versions(
    moved: list[tuple[str, dict[str, Any]]],
    it: int,
    latest: dict[str, dict[str, Any]],
    db: RunDB,
) -> None:
    """Delete the item's copies of the ``moved`` versions; keep ``latest`` where it was.

    ``latest``: key -> the version tagged ``latest`` before the move (:func:`latest_of`); one
    that was another run's (the move re-tagged the key) is tagged ``latest`` again.
    """
    olds = {(art["key"], was) for was, art in moved if was}
    for was, art in moved:
        if was:
            with contextlib.suppress(NotFoundError):
                db.del_artifact(art["key"], project=art.get("project", ""), uid=was, iter=it)
    for key, version in latest.items():
        if (key, version.get("uid")) in olds:
            continue  # it was ours: its re-produced version is the latest now
        db.store_artifact(
            key,
            version,
            uid=version.get("uid"),
            iter=version.get("iteration", 0),
            project=version.get("project", ""),
            tree=version.get("tree", ""),
        )


def latest_of(record: dict[str, Any], db: RunDB) -> dict[str, dict[str, Any]]:
    """Return key -> the version tagged ``latest`` now, for the keys ``record`` lists."""
    project = record["metadata"].get("project", "")
    found: dict[str, dict[str, Any]] = {}
    for art in record["status"].get("artifacts") or []:
        try:
            found[art["key"]] = db.read_artifact(art["key"], tag="latest", project=project)
        except NotFoundError:
            pass
    return found
