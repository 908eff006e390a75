"""A cached rerun finds its hits in one batched read, and still finds hits the batch lacks."""

from __future__ import annotations

from mlflowlet import get_run_db, pipeline, step

STEPS = 30
RAN: list[int] = []


@step
def inc(context, x: int = 0, k: int = 0) -> int:
    RAN.append(x)
    return x + 1


@pipeline
def chain(start: int = 0):
    node = inc(x=start)
    for _ in range(STEPS - 1):
        node = inc(x=node.output)


class CountingDB:
    """A real run DB that counts the run queries made through it."""

    def __init__(self, db):
        self._db, self.queries = db, 0

    def list_runs(self, *args, **kwargs):
        self.queries += 1
        return self._db.list_runs(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_a_cached_rerun_reads_its_hits_in_one_batch_not_one_query_per_step(dbdir):
    db = CountingDB(get_run_db())
    first = chain.run(db=db, cache=True)
    assert first.state == "completed" and len(RAN) == STEPS
    RAN.clear()
    db.queries = 0
    again = chain.run(db=db, cache=True)
    assert again.state == "completed" and RAN == []  # nothing ran: every step hit
    assert db.queries == 1, db.queries  # the newest step runs at once, not 30 lookups
    for name, entry in again.status.steps.items():
        assert entry["cached_from"] == first.status.steps[name]["uid"], name


def test_hits_missing_from_the_latest_run_are_still_found_one_by_one(dbdir):
    db = get_run_db()
    one = chain.run(db=db, start=1, cache=True)
    chain.run(db=db, start=5, cache=True)  # the latest run: other keys
    RAN.clear()
    back = chain.run(db=db, start=1, cache=True)
    assert back.state == "completed" and RAN == []
    assert {e["cached_from"] for e in back.status.steps.values()} == {
        e["uid"] for e in one.status.steps.values()
    }
    assert back.steps[list(back.steps)[-1]].status.results["return"] == 1 + STEPS
