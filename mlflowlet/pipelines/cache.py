"""Step caching: a key from code, params and input hashes; hits recorded as runs of their own.

The key is the sha256 of the step's code hash, handler, declared outputs, resolved parameters,
the hashes of its input artifacts (their URIs when a store gives no hash), and its hyper-parameter
or fan-out settings. Every step run carries it as the label ``cache_key`` (an indexed label, so a
lookup is one query). With caching on, a step whose key matches an earlier ``completed`` run is
not run: a new run is recorded, labelled ``cached_from=<original uid>``, with the original's
results and artifact records (the same files), so outputs flow on and lineage stays whole.
Changing the code, a parameter or an input's content gives a new key. A step cached with a max
age (``cache=timedelta(...)``) reuses only a run computed at most that long ago: a hit keeps the
time its original was computed (annotation ``cached_at``), so reusing it does not refresh it.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from .._binding import code_hash
from ..model import RunObject, new_uid, now_iso

if TYPE_CHECKING:
    from ..db.base import RunDB

CACHE_LABEL = "cache_key"
CACHED_FROM = "cached_from"
CACHED_AT = "cached_at"


def cache_key(
    fn: Any,
    spec: Any,
    params: dict[str, Any],
    input_hashes: dict[str, Any],
    extra: dict[str, Any] | None = None,
    code: str | None = None,
) -> str:
    """Return the cache key of one step run.

    Args:
        fn: the step's raw function (its source is hashed).
        spec: the step's ``StepSpec``.
        params: the resolved parameter values.
        input_hashes: parameter name to the input artifact's hash (or a list for collected inputs).
        extra: hyper-parameter / fan-out settings that change what runs.
        code: ``code_hash(fn)`` when the caller already knows it.
    """
    body = {
        "code": code or code_hash(fn),
        "handler": spec.handler,
        "outputs": list(spec.outputs),
        "params": params,
        "inputs": input_hashes,
        "extra": extra or {},
    }
    text = json.dumps(body, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def find_cached(
    db: RunDB, key: str, project: str, max_age: float | None = None
) -> dict[str, Any] | None:
    """Return the newest completed run recorded with cache key ``key`` (as a dict), or None.

    With ``max_age`` (seconds), a run whose result was computed longer ago is stale: None.
    """
    found = db.list_runs(project=project, labels={CACHE_LABEL: key}, state="completed", last=1)
    if not found:
        return None
    if max_age is not None and computed_age(found[0]) > max_age:
        return None
    return found[0]


def computed_at(run: dict[str, Any]) -> str:
    """Return when a run's result was computed (a cache hit keeps its original's time)."""
    meta, status = run.get("metadata", {}), run.get("status", {})
    return (meta.get("annotations") or {}).get(CACHED_AT) or status.get("end_time") or ""


def computed_age(run: dict[str, Any]) -> float:
    """Return how many seconds ago a run's result was computed (inf when unknown)."""
    from datetime import datetime, timezone

    try:
        stamp = datetime.fromisoformat(computed_at(run))
    except ValueError:
        return float("inf")
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - stamp).total_seconds()


def prefetch(db: RunDB, project: str, pipeline: str, limit: int) -> dict[str, dict[str, Any]]:
    """Return the newest ``limit`` completed step runs of ``pipeline``, by cache key.

    One query for the whole rerun, instead of one per step: a rerun of an unchanged pipeline
    finds every hit here (``limit`` is its step count, so the window holds the last run's steps).
    A key found here is the newest completed run with that exact key, as :func:`find_cached`
    would return it (any newer one would be in the window); a key not found is looked up on its
    own. The pipeline runs themselves (large bodies: the whole graph) are not read.

    Args:
        db: the run DB.
        project: the project.
        pipeline: the pipeline's name (its step runs carry it as the label ``pipeline``).
        limit: how many of the newest step runs to read.
    """
    found: dict[str, dict[str, Any]] = {}
    labels = [f"pipeline={pipeline}", CACHE_LABEL]  # step runs only: they carry a cache key
    for run in db.list_runs(project=project, labels=labels, state="completed", last=limit):
        key = (run["metadata"].get("labels") or {}).get(CACHE_LABEL)
        if key and key not in found:
            found[key] = run
    return found


def record_hit(
    db: RunDB,
    original: dict[str, Any],
    name: str,
    labels: dict[str, str],
    parent_uid: str,
    pipeline_uid: str,
    params: dict[str, Any],
    inputs: dict[str, str],
) -> RunObject:
    """Record a run that reuses ``original``'s results and artifacts, and return it.

    The new run keeps the original's status (results, artifact records, iterations, code hash),
    gets its own uid, this pipeline's labels and ``cached_from`` (the first original, when the
    original was itself a cache hit).
    """
    run, data = hit_run(
        json.loads(json.dumps(original)), name, labels, parent_uid, pipeline_uid, params, inputs
    )
    db.store_run(data, run.uid, run.metadata.project, 0)
    return run


def hit_run(
    data: dict[str, Any],
    name: str,
    labels: dict[str, str],
    parent_uid: str,
    pipeline_uid: str,
    params: dict[str, Any],
    inputs: dict[str, str],
) -> tuple[RunObject, dict[str, Any]]:
    """Turn ``data`` (a fresh copy of the original run, changed in place) into the hit's run.

    Returns the hit as a ``RunObject`` and as the dict to store (see :func:`record_hit`); the
    caller stores it, so several hits can be written in one transaction.
    """
    meta = data["metadata"]
    spec, status = data.setdefault("spec", {}), data.setdefault("status", {})
    source = (meta.get("labels") or {}).get(CACHED_FROM) or meta["uid"]
    origin = computed_at(data)
    meta.update(uid=new_uid(), name=name, iteration=0)
    meta["annotations"] = {**(meta.get("annotations") or {}), CACHED_AT: origin}
    meta["labels"] = {**(meta.get("labels") or {}), **labels, CACHED_FROM: source}
    spec.update(parent_uid=parent_uid, pipeline_uid=pipeline_uid, params=params, inputs=inputs)
    stamp = now_iso()
    status.update(state="completed", start_time=stamp, end_time=stamp, last_update=stamp, error="")
    return RunObject.model_validate(data), data
