import types
from datetime import datetime, timedelta

from mlflowlet import DataItem, get_run_db, pipeline, step
from mlflowlet.pipelines import cache

CALLS: list[str] = []


@step(outputs=["data"])
def make(context, rows: int = 3):
    CALLS.append("make")
    context.log_artifact("data", body=",".join(map(str, range(rows))), format="txt")


@step
def total(context, data: DataItem) -> int:
    CALLS.append("total")
    return sum(int(x) for x in data.get().decode().split(","))


@step(cache=False)
def uncached(context, x: int) -> int:
    CALLS.append("uncached")
    return x


@pipeline
def summed(rows: int = 3):
    t = total(data=make(rows=rows).outputs["data"])
    uncached(x=t.output)


def test_cached_rerun_reuses_outputs_without_running(dbdir):
    first = summed.run(rows=4, cache=True)
    CALLS.clear()
    second = summed.run(rows=4, cache=True)
    assert CALLS == ["uncached"]  # cache=False on the step wins over run(cache=True)
    assert second.steps["total"].results == first.steps["total"].results == {"return": 6}
    for name in ("make", "total"):
        hit, orig = second.steps[name], first.steps[name]
        assert hit.uid != orig.uid and hit.metadata.labels["cached_from"] == orig.uid
        assert hit.spec.pipeline_uid == second.uid and hit.state == "completed"
        assert second.run.status.steps[name]["cached_from"] == orig.uid
    assert second.steps["make"].status.artifacts[0]["uri"] == \
        first.steps["make"].status.artifacts[0]["uri"]
    rows = second.lineage()
    assert {(r["producer_uid"], r["consumer_uid"]) for r in rows} >= {
        (second.steps["make"].uid, second.steps["total"].uid)}
    assert get_run_db().read_run(second.steps["total"].uid)["metadata"]["labels"][
        "cached_from"] == first.steps["total"].uid


SEEN: list[dict] = []


@step(cache=False)
def peek(context, x: int) -> int:
    pipe = context.labels["pipeline_uid"]
    SEEN.append({r["metadata"]["name"]: r["metadata"]["labels"].get("cached_from")
                 for r in get_run_db().list_runs(pipeline_uid=pipe)})
    return x


@pipeline
def peeked(rows: int = 3):
    peek(x=total(data=make(rows=rows).outputs["data"]).output)


def test_hits_are_in_the_db_before_a_real_step_runs(dbdir):
    first = peeked.run(rows=5, cache=True)
    SEEN.clear()
    second = peeked.run(rows=5, cache=True)
    assert second.state == "completed" and len(SEEN) == 1
    assert SEEN[0]["make"] == first.steps["make"].uid
    assert SEEN[0]["total"] == first.steps["total"].uid
    edges = {(r["producer_uid"], r["consumer_uid"]) for r in second.lineage()}
    assert edges == {(second.steps["make"].uid, second.steps["total"].uid),
                     (second.steps["total"].uid, second.steps["peek"].uid)}


def test_hits_from_another_pipeline_are_recorded_with_their_results(dbdir):
    first = summed.run(rows=6, cache=True)
    second = peeked.run(rows=6, cache=True)  # make and total hit, from another pipeline
    db = get_run_db()
    for name in ("make", "total"):
        stored = db.read_run(second.steps[name].uid)
        assert stored["metadata"]["labels"]["cached_from"] == first.steps[name].uid
        assert stored["status"]["results"] == first.steps[name].results
    hits = db.list_runs(pipeline_uid=second.uid, labels="cached_from")
    assert sorted(r["metadata"]["name"] for r in hits) == ["make", "total"]


def test_a_hit_of_a_hit_points_at_the_original(dbdir):
    first = summed.run(cache=True)
    summed.run(cache=True)
    third = summed.run(cache=True)
    assert third.steps["make"].metadata.labels["cached_from"] == first.steps["make"].uid


def test_without_cache_everything_runs_again(dbdir):
    summed.run(rows=2)
    CALLS.clear()
    summed.run(rows=2)
    assert CALLS == ["make", "total", "uncached"]


def test_changed_param_misses_and_changed_input_invalidates_downstream(dbdir):
    summed.run(rows=3, cache=True)
    CALLS.clear()
    summed.run(rows=5, cache=True)
    assert CALLS == ["make", "total", "uncached"]  # new rows: new data, new input hash


def test_same_input_content_from_a_rerun_producer_still_hits(dbdir):
    summed.run(rows=3, cache=True)
    CALLS.clear()
    again = pipeline(summed.fn)
    run = again.run(rows=3, cache=True, labels={"try": "2"})
    assert CALLS == ["uncached"] and run.state == "completed"


def _step_from_source(body: str):
    module = types.ModuleType("cache_dynamic")
    exec(compile(f"def work(context, x: int = 1):\n    return {body}\n", "<dynamic>", "exec"),
         module.__dict__)
    return step(module.work)


def test_changed_code_invalidates_the_cache(dbdir):
    v1, v1_again, v2 = (_step_from_source(b) for b in ("x + 1", "x + 1", "x + 2"))
    assert v1.spec.handler == v2.spec.handler == "cache_dynamic:work"

    def pipe_of(st):
        def body():
            st(x=1)

        return pipeline(name="dyn")(body)

    first = pipe_of(v1).run(cache=True)
    same = pipe_of(v1_again).run(cache=True)
    changed = pipe_of(v2).run(cache=True)
    assert same.steps["work"].metadata.labels.get("cached_from") == first.steps["work"].uid
    assert "cached_from" not in changed.steps["work"].metadata.labels
    assert changed.steps["work"].results == {"return": 3}


def test_cache_key_depends_on_params_inputs_and_code():
    spec = total.spec
    base = cache.cache_key(total.fn, spec, {"a": 1}, {"data": "h1"})
    assert base == cache.cache_key(total.fn, spec, {"a": 1}, {"data": "h1"})
    assert base != cache.cache_key(total.fn, spec, {"a": 2}, {"data": "h1"})
    assert base != cache.cache_key(total.fn, spec, {"a": 1}, {"data": "h2"})
    assert base != cache.cache_key(make.fn, spec, {"a": 1}, {"data": "h1"})


@step
def scored(lr: float = 0.1) -> dict:
    return {"acc": lr}


def _sweep(grid):
    @pipeline(name="sweep")
    def sweep():
        scored.with_hyper_params({"lr": grid}, selector="max.acc")()

    return sweep


def _fan(items, parallel=None):
    @pipeline(name="fan")
    def fan():
        scored.map(items=items, item_param="lr", parallel=parallel)

    return fan


def test_a_changed_hyper_parameter_grid_misses_the_cache(dbdir):
    first = _sweep([0.1, 0.2]).run(cache=True)
    again = _sweep([0.1, 0.2]).run(cache=True)
    changed = _sweep([0.1, 0.5]).run(cache=True)
    assert "cached_from" in again.steps["scored"].metadata.labels
    assert "cached_from" not in changed.steps["scored"].metadata.labels
    assert (first.steps["scored"].results["acc"], changed.steps["scored"].results["acc"]) == (
        0.2, 0.5)


def test_changed_fan_out_items_miss_the_cache(dbdir):
    _fan([0.1, 0.2]).run(cache=True)
    assert "cached_from" in _fan([0.1, 0.2]).run(cache=True).steps["scored"].metadata.labels
    changed = _fan([0.1, 0.3]).run(cache=True)
    assert "cached_from" not in changed.steps["scored"].metadata.labels


def test_a_fan_out_hits_the_cache_at_any_parallelism(dbdir):
    # a completed map ran every item whatever its parallelism: max_parallel=2 missed a run
    # cached at max_parallel=4, and the map ran again
    first = _fan([0.1, 0.2]).run(cache=True, max_parallel=4)
    for again in (_fan([0.1, 0.2], parallel=1).run(cache=True),
                  _fan([0.1, 0.2]).run(cache=True, max_parallel=2)):
        labels = again.steps["scored"].metadata.labels
        assert labels["cached_from"] == first.steps["scored"].uid


AGED: list[str] = []


@step(cache=timedelta(minutes=5))
def aged(context, x: int) -> int:
    AGED.append("ran")
    return x * 2


@pipeline
def aging(x: int = 1):
    aged(x=x)


def _time_passes(db, minutes: int) -> None:
    """Shift every recorded time (end times, cache-hit origins) ``minutes`` into the past."""
    def back(stamp: str) -> str:
        return (datetime.fromisoformat(stamp) - timedelta(minutes=minutes)).isoformat()

    for data in db.list_runs():
        data["status"]["end_time"] = back(data["status"]["end_time"])
        notes = data["metadata"].get("annotations") or {}
        if "cached_at" in notes:
            notes["cached_at"] = back(notes["cached_at"])
        db.store_run(data, data["metadata"]["uid"], data["metadata"]["project"], 0)


def test_cache_max_age_reuses_fresh_runs_and_reruns_stale_ones(dbdir):
    db = get_run_db()
    AGED.clear()
    first = aging.run(x=3)
    _time_passes(db, 4)  # computed 4 minutes ago: within 5, reused
    hit = aging.run(x=3)
    assert AGED == ["ran"]
    assert hit.run.status.steps["aged"]["cached_from"] == first.steps["aged"].uid
    _time_passes(db, 2)  # the hit ended 2 minutes ago, but its result was computed 6 ago
    fresh = aging.run(x=3)
    assert AGED == ["ran", "ran"] and not fresh.run.status.steps["aged"].get("cached_from")
    assert fresh.steps["aged"].results == {"return": 6}
    again = aging.run(x=3)  # the fresh run is reused again
    assert AGED == ["ran", "ran"]
    assert again.run.status.steps["aged"]["cached_from"] == fresh.steps["aged"].uid


def test_a_cache_hit_keeps_the_time_its_original_was_computed(dbdir):
    first = aging.run(x=5)
    hit = aging.run(x=5)
    stored = get_run_db().read_run(hit.steps["aged"].uid)
    assert stored["metadata"]["annotations"]["cached_at"] == first.steps["aged"].status.end_time
    assert cache.computed_at(stored) == first.steps["aged"].status.end_time


def test_cache_options_are_checked_at_decoration():
    import pytest

    from mlflowlet.errors import StepDefinitionError

    for bad, words in ((timedelta(0), "never reuses"), ("1h", "timedelta")):
        with pytest.raises(StepDefinitionError, match=words):
            step(cache=bad)(lambda x: x)
    assert aged.with_options(cache=True).spec.cache_max_age is None
    assert aged.spec.cache_max_age == 300.0 and aged.spec.describe()["cache_max_age"] == 300.0


# --- the key's format, the lookup and the hit record, exactly ------------------------------------


def test_cache_key_is_the_sha256_of_its_documented_fields():
    # Keys are stored with runs: a new release must compute the same key for the same step,
    # or every cache silently misses after an upgrade.
    import hashlib
    import json

    params, hashes, extra = {"b": 2, "a": [1, "x"]}, {"data": "h1"}, {"strategy": "list"}
    body = {"code": "c0de", "handler": total.spec.handler, "outputs": list(total.spec.outputs),
            "params": params, "inputs": hashes, "extra": extra}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert cache.cache_key(total.fn, total.spec, params, hashes, extra, code="c0de") == expected
    reordered = {"a": [1, "x"], "b": 2}
    assert cache.cache_key(total.fn, total.spec, reordered, hashes, extra, code="c0de") == expected


def test_cache_key_of_values_json_cannot_hold_uses_their_repr():
    import datetime

    first = cache.cache_key(total.fn, total.spec, {"d": datetime.date(2024, 1, 1)}, {})
    second = cache.cache_key(total.fn, total.spec, {"d": datetime.date(2024, 1, 2)}, {})
    assert len(first) == 64 and first != second


def _original(uid, project="p", state="completed", key="k1", start="2024-01-01T00:00:00+00:00"):
    return {
        "metadata": {"uid": uid, "name": "orig", "project": project, "iteration": 0,
                     "labels": {"framework": "sk", cache.CACHE_LABEL: key}},
        "spec": {"params": {"x": 1}},
        "status": {"state": state, "start_time": start, "results": {"r": uid}},
    }


def test_find_cached_returns_the_newest_completed_run_of_the_project_only(dbdir):
    db = get_run_db()
    for uid, project, state, start in (
        ("old", "p", "completed", "2024-01-01T00:00:00+00:00"),
        ("new", "p", "completed", "2024-02-01T00:00:00+00:00"),
        ("failed", "p", "error", "2024-03-01T00:00:00+00:00"),
        ("other", "q", "completed", "2024-04-01T00:00:00+00:00"),
    ):
        db.store_run(_original(uid, project, state, start=start), uid, project, 0)
    assert cache.find_cached(db, "k1", "p")["metadata"]["uid"] == "new"
    assert cache.find_cached(db, "k1", "q")["metadata"]["uid"] == "other"
    assert cache.find_cached(db, "k2", "p") is None


def test_record_hit_stores_a_run_of_its_own_with_the_originals_results(dbdir):
    db = get_run_db()
    original = _original("orig-uid")
    original["metadata"]["iteration"] = 3
    original["status"].update(end_time="2024-01-01T00:01:00+00:00", error="an old message")
    run = cache.record_hit(db, original, "hit", {"step": "s"}, "parent-uid", "pipe-uid",
                           {"x": 2}, {"data": "store://x"})
    stored = db.read_run(run.uid)
    meta, spec, status = stored["metadata"], stored["spec"], stored["status"]
    assert run.uid != "orig-uid" and (meta["name"], meta["iteration"]) == ("hit", 0)
    assert meta["labels"] == {"framework": "sk", cache.CACHE_LABEL: "k1", "step": "s",
                              cache.CACHED_FROM: "orig-uid"}
    assert (spec["parent_uid"], spec["pipeline_uid"]) == ("parent-uid", "pipe-uid")
    assert (spec["params"], spec["inputs"]) == ({"x": 2}, {"data": "store://x"})
    assert status["state"] == "completed" and status["error"] == ""
    assert status["results"] == {"r": "orig-uid"}
    assert status["start_time"] == status["end_time"] == status["last_update"]
    assert status["start_time"] > "2024-01-01T00:01:00+00:00"
    assert [r["metadata"]["uid"] for r in db.list_runs(project="p", name="hit")] == [run.uid]
    assert original["metadata"]["uid"] == "orig-uid"  # the original dict is left alone
    hit_of_hit = cache.record_hit(db, stored, "again", {}, "p2", "p2", {}, {})
    assert hit_of_hit.metadata.labels[cache.CACHED_FROM] == "orig-uid"


def test_hit_run_fills_in_a_record_without_spec_or_status():
    data = {"metadata": {"uid": "u0", "name": "n", "project": "p"}}
    run, stored = cache.hit_run(data, "hit", {}, "parent", "pipe", {"a": 1}, {})
    assert stored["spec"]["params"] == {"a": 1} and stored["status"]["state"] == "completed"
    assert run.metadata.labels == {cache.CACHED_FROM: "u0"}


def test_prefetch_reads_the_newest_completed_step_runs_of_the_pipeline_in_the_project(dbdir):
    db = get_run_db()

    def step_run(uid, key, start, project="p", pipe="flow", state="completed"):
        run = _original(uid, project, state, key=key, start=start)
        run["metadata"]["labels"]["pipeline"] = pipe
        db.store_run(run, uid, project, 0)

    step_run("old", "k1", "2024-01-01T00:00:00+00:00")
    step_run("new", "k1", "2024-02-01T00:00:00+00:00")
    step_run("k2-run", "k2", "2024-01-15T00:00:00+00:00")
    step_run("failed", "k3", "2024-03-01T00:00:00+00:00", state="error")
    step_run("elsewhere", "k4", "2024-03-01T00:00:00+00:00", project="q")
    step_run("other-pipe", "k5", "2024-03-01T00:00:00+00:00", pipe="other")
    plain = _original("no-key", start="2024-04-01T00:00:00+00:00")
    plain["metadata"]["labels"] = {"pipeline": "flow"}  # a pipeline run: no cache key
    db.store_run(plain, "no-key", "p", 0)
    found = cache.prefetch(db, "p", "flow", 10)
    assert {k: r["metadata"]["uid"] for k, r in found.items()} == {"k1": "new", "k2": "k2-run"}
    assert list(cache.prefetch(db, "p", "flow", 1)) == ["k1"]  # the newest one only
