"""A run filter matching few runs reads those runs only, whatever else the DB holds.

Without statistics SQLite's planner walked ``runs_top`` in ``start_time`` order and tested each
run against the other filters, so a filter matching no run (every cache miss of a pipeline run,
a name, the ``running`` runs every unfiltered list judges) read every stored run: 14-40 ms over
100,000 runs. The work is counted in SQLite VM instructions (a progress handler), not timed.
"""

from __future__ import annotations

import pytest

from mlflowlet.db.sqlite import SQLiteRunDB
from mlflowlet.pipelines.cache import CACHE_LABEL, find_cached

RUNS = 10_000


def _run(i: int, labels: dict, state: str = "completed", project: str = "p") -> dict:
    return {
        "metadata": {"uid": f"u{i:05d}", "name": f"train-{i % 3}" if i % 500 else "rare",
                     "project": project, "iteration": 0, "labels": labels},
        "spec": {"pipeline_uid": f"pipe{i // 100}" if i % 10 == 0 else "",
                 "parent_uid": f"sweep{i // 5}" if i % 1000 == 1 else ""},
        "status": {"state": state, "start_time": f"2024-01-01T{i // 3600:02d}:"
                   f"{i // 60 % 60:02d}:{i % 60:02d}+00:00"},
    }


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    database = SQLiteRunDB(str(tmp_path_factory.mktemp("plans") / "runs.db"))
    database.store_runs(
        _run(i, {"batch": str(i % 1000), "parity": str(i % 2), CACHE_LABEL: f"k{i}"},
             state="running" if i % 50 == 0 else "completed")
        for i in range(RUNS)
    )
    yield database
    database.close()


def _steps(db: SQLiteRunDB, call) -> tuple[int, object]:
    """Return (thousands of VM instructions ``call()`` ran, what it returned)."""
    ticks = [0]

    def tick() -> int:
        ticks[0] += 1
        return 0

    db._conn.set_progress_handler(tick, 1000)
    try:
        result = call()
    finally:
        db._conn.set_progress_handler(None, 0)
    return ticks[0], result


def _uids(runs) -> list[str]:
    return [r["metadata"]["uid"] for r in runs]


def test_a_cache_miss_reads_no_run(db):
    ticks, found = _steps(db, lambda: find_cached(db, "no-such-key", "p"))
    assert found is None
    scan, _ = _steps(db, lambda: db.list_runs(labels="parity=1"))
    assert scan > 100, "the handler counts a query reading 5,000 runs"
    assert ticks <= 2, ticks  # a walk over the 10,000 runs costs about 90


def test_a_cache_hit_reads_its_run_only(db):
    ticks, found = _steps(db, lambda: find_cached(db, "k4", "p"))
    assert found is not None and found["metadata"]["uid"] == "u00004"
    assert ticks <= 2, ticks
    assert find_cached(db, "k50", "p") is None  # k50's run is running, not completed
    assert find_cached(db, "k4", "other") is None


@pytest.mark.parametrize("kwargs", [
    {"labels": "batch=7"},
    {"labels": {"parity": "1", "batch": "7"}},
    {"labels": {"parity": "0", "batch": "8"}, "name": "train-2"},
    {"labels": "batch=7", "last": 2},
    {"labels": "batch=7", "state": "completed", "project": "p"},
    {"labels": ["batch=14", "parity!=1"], "name": "~TRAIN"},
    {"name": "rare"},
    {"name": "rare", "labels": "parity=0", "last": 3, "offset": 1},
    {"pipeline_uid": "pipe7"},
    {"pipeline_uid": "pipe7", "labels": "batch=710"},
    {"parent_uid": "sweep1200", "state": "completed"},
    {"uid": "u00123"},
    {"state": "running", "last": 4},
    {"last": 4},
])
def test_a_selective_label_reads_its_runs_only_and_finds_what_a_scan_finds(db, kwargs):
    ticks, found = _steps(db, lambda: db.list_runs(**kwargs))
    skip, last = kwargs.get("offset", 0), kwargs.get("last")
    expected = [r for r in _all(db) if _matches(r, kwargs)][skip : skip + last if last else None]
    assert _uids(found) == _uids(expected) and found, kwargs  # same runs, newest first
    assert ticks <= 20, ticks  # probing a label matching 1,000+ runs costs ~8 (bounded)


def test_a_label_matching_many_runs_pages_newest_first(db):
    found = db.list_runs(labels="parity=1", last=3)  # matches 5,000: not driven
    assert _uids(found) == ["u09999", "u09997", "u09995"]
    assert _uids(db.list_runs(labels="parity=0", last=2, offset=1)) == ["u09996", "u09994"]


def _all(db) -> list[dict]:
    """Every run, newest first, read without any filter (the walk in time order)."""
    return db.list_runs()


def _matches(run: dict, kwargs: dict) -> bool:
    meta, state, spec = run["metadata"], run["status"]["state"], run.get("spec", {})
    if any(spec.get(k) != kwargs[k] for k in ("pipeline_uid", "parent_uid") if k in kwargs):
        return False
    if "uid" in kwargs and meta["uid"] != kwargs["uid"]:
        return False
    labels = kwargs.get("labels", [])
    pairs = [labels] if isinstance(labels, str) else (
        labels if isinstance(labels, list) else [f"{k}={v}" for k, v in labels.items()])
    for pair in pairs:
        if "!=" in pair:
            key, value = pair.split("!=")
            if meta["labels"].get(key) == value:
                return False
        else:
            key, value = pair.split("=")
            if meta["labels"].get(key) != value:
                return False
    name = kwargs.get("name", "")
    if name and (name[1:].lower() not in meta["name"] if name.startswith("~")
                 else meta["name"] != name):
        return False
    return all(kwargs.get(k, v) == v for k, v in (("state", state), ("project", meta["project"])))
