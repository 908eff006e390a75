import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mlflowlet import DataItem, get_run_db, pipeline, step
from mlflowlet.errors import ConfigError, RunError

GATE = threading.Event()
BARRIER = threading.Barrier(2, timeout=10)
ATTEMPTS: list[str] = []


@step(outputs=["dataset"])
def prep(context, rows: int = 100):
    context.log_artifact("dataset", body="\n".join(map(str, range(rows))), format="csv")


@step(outputs=["model"])
def train(context, dataset: DataItem, lr: float = 0.1):
    n = len(dataset.get().decode().splitlines())
    context.log_result("accuracy", round(min(1.0, n * lr / 10), 3))
    context.log_artifact("model", body=f"lr={lr} n={n}".encode(), format="txt")


@step
def evaluate(context, model: DataItem, threshold: float = 0.5) -> str:
    return model.get().decode()


@pipeline(name="train-eval")
def train_eval(rows: int = 100, lr: float = 0.1):
    data = prep(rows=rows)
    model = train(dataset=data.outputs["dataset"], lr=lr)
    evaluate(model=model.outputs["model"], threshold=0.7)


@step
def source(context, n: int = 4) -> int:
    return n


@step
def double(context, x: int) -> int:
    return 2 * x


@step
def plus(context, x: int, y: int = 1) -> int:
    return x + y


@step
def combine(context, a: int, b: int) -> int:
    return a * 100 + b


@step
def boom(context, x: int = 0):
    raise ValueError(f"boom on {x}")


@pipeline
def diamond(n: int = 4):
    s = source(n=n)
    a = double(x=s.output)
    b = plus(x=s.output)
    combine(a=a.output, b=b.output)


@pipeline
def broken():
    s = source(n=1)
    bad = boom(x=s.output)
    plus(x=bad.output)              # depends on the failure: skipped
    after = plus(x=5).after(bad)    # ordering on the failure: skipped
    plus(x=after.output)            # downstream of a skipped step: skipped
    healthy = double(x=s.output)    # independent branch: completes
    plus(x=healthy.output)


@step(retries=2, retry_delay=0.01)
def flaky(context, fail_times: int = 2) -> int:
    ATTEMPTS.append(context.uid)
    if len(ATTEMPTS) <= fail_times:
        raise RuntimeError(f"transient failure {len(ATTEMPTS)}")
    return len(ATTEMPTS)


@pipeline
def retrying(fail_times: int = 2):
    plus(x=flaky(fail_times=fail_times).output)


@step
def meet(context, who: str) -> str:
    BARRIER.wait()  # passes only when the other branch is running at the same time
    return who


@pipeline
def parallel_pair():
    meet(who="a")
    meet(who="b")


@step
def held(context) -> str:
    if not GATE.wait(10):
        raise TimeoutError("gate never opened")
    return "released"


@pipeline
def gated():
    held()


@step(timeout=0.2)
def stuck(context) -> str:
    context.log_metric("progress", 0.5, step=1)  # buffered: the flush window is 1 s
    GATE.wait(10)
    return "late"


@pipeline
def times_out():
    plus(x=1)
    stuck()


@step(outputs=["config"])
def config(context):
    return {"depth": 3, "name": "tree"}


@step
def typed(context, config: dict) -> int:
    return config["depth"]


@pipeline
def typed_inputs():
    typed(config=config().outputs["config"])


def test_train_eval_runs_with_dataitems_and_results(dbdir):
    run = train_eval.run(rows=50)
    assert run.state == "completed" and run.error == ""
    assert list(run.steps) == ["prep", "train", "evaluate"]
    assert run.steps["train"].results["accuracy"] == 0.5
    assert run.steps["evaluate"].results["return"] == "lr=0.1 n=50"
    train_run = run.steps["train"]
    assert train_run.spec.inputs["dataset"].endswith("dataset.csv")
    assert Path(train_run.spec.inputs["dataset"]).is_file()


def test_each_step_is_a_labelled_child_run_of_the_pipeline_run(dbdir):
    run = train_eval.run(rows=20)
    db = get_run_db()
    children = db.list_runs(labels={"pipeline_uid": run.uid}, sort=False)
    assert sorted(r["metadata"]["name"] for r in children) == ["evaluate", "prep", "train"]
    for child in children:
        labels, spec = child["metadata"]["labels"], child["spec"]
        assert labels["pipeline"] == "train-eval" and labels["step"] == child["metadata"]["name"]
        assert spec["parent_uid"] == run.uid == spec["pipeline_uid"]
        assert child["status"]["state"] == "completed"
    assert {r["metadata"]["uid"] for r in db.list_runs(parent_uid=run.uid)} == {
        r["metadata"]["uid"] for r in children}


def test_pipeline_run_records_graph_and_step_states(dbdir):
    run = train_eval.run(rows=20)
    stored = get_run_db().read_run(run.uid, project=run.project)
    assert stored["metadata"]["labels"]["kind"] == "pipeline"
    assert stored["status"]["state"] == "completed"
    assert [n["name"] for n in stored["spec"]["graph"]["nodes"]] == ["prep", "train", "evaluate"]
    assert stored["spec"]["params"] == {"rows": 20, "lr": 0.1}
    steps = stored["status"]["steps"]
    assert set(steps) == {"prep", "train", "evaluate"}
    for name, entry in steps.items():
        assert entry["uid"] == run.steps[name].uid and entry["state"] == "completed"
        assert entry["duration"] >= 0


def test_diamond_runs_both_branches_into_the_join(dbdir):
    run = diamond.run(n=4)
    assert run.state == "completed"
    assert run.steps["combine"].results["return"] == 805
    assert run.steps["combine"].spec.params == {"a": 8, "b": 5}


def test_failing_branch_skips_its_downstream_and_lets_the_other_finish(dbdir):
    run = broken.run(max_parallel=1)
    states = {name: r.state for name, r in run.steps.items()}
    assert states == {"source": "completed", "boom": "error", "plus": "skipped",
                      "plus-2": "skipped", "plus-3": "skipped", "double": "completed",
                      "plus-4": "completed"}
    assert run.state == "error" and "step 'boom' failed: ValueError: boom on 1" in run.error
    reasons = {name: e.get("reason") for name, e in run.run.status.steps.items()}
    assert reasons["plus"] == "upstream step 'boom' failed"
    assert reasons["plus-3"] == "upstream step 'plus-2' was skipped"
    stored = get_run_db().read_run(run.steps["plus"].uid, project=run.project)
    assert stored["status"]["state"] == "skipped"


def test_failed_pipeline_raises_only_when_asked(dbdir):
    run = broken.run()
    with pytest.raises(RunError, match="boom"):
        run.wait(raise_on_error=True)


def test_retries_record_each_attempt_with_backoff(dbdir):
    ATTEMPTS.clear()
    run = retrying.run(fail_times=2)
    assert run.state == "completed" and run.steps["plus"].results["return"] == 4
    entry = run.run.status.steps["flaky"]
    assert entry["attempts"] == 3 and entry["attempt_uids"] == ATTEMPTS
    states = [get_run_db().read_run(uid)["status"]["state"] for uid in ATTEMPTS]
    assert states == ["error", "error", "completed"]


def test_retries_exhausted_fail_the_step(dbdir):
    ATTEMPTS.clear()
    run = retrying.run(fail_times=9)
    assert run.state == "error" and len(ATTEMPTS) == 3
    assert run.steps["plus"].state == "skipped"
    assert "transient failure 3" in run.error


def test_independent_steps_run_concurrently(dbdir):
    run = parallel_pair.run(max_parallel=2)
    assert run.state == "completed", run.error
    assert sorted(r.results["return"] for r in run.steps.values()) == ["a", "b"]


def test_wait_false_returns_while_running(dbdir):
    GATE.clear()
    try:
        run = gated.run(wait=False)
        assert run.state == "running" and run.steps == {}
    finally:
        GATE.set()
    run.wait(timeout=10)
    assert run.state == "completed" and run.steps["held"].results["return"] == "released"


def test_step_timeout_fails_the_step_and_keeps_the_others(dbdir):
    GATE.clear()
    try:
        run = times_out.run(max_parallel=1)
    finally:
        GATE.set()
    assert run.steps["plus"].state == "completed"
    assert run.steps["stuck"].state == "error"
    assert run.steps["stuck"].status.error == (
        "step 'stuck' timed out after 0.2s (the in-process call was abandoned; raise timeout= "
        "or make the step faster)")
    stored = get_run_db().read_run(run.steps["stuck"].uid)
    assert stored["status"]["state"] == "error"
    assert stored["status"]["end_time"] >= stored["status"]["start_time"]  # it ended: recorded
    assert stored["status"]["last_update"] >= stored["status"]["end_time"]
    # logged before the deadline, so recorded (the buffer was dropped with the abandoned call)
    points = get_run_db().get_metrics(run.steps["stuck"].uid)
    assert [(m["key"], m["step"], m["value"]) for m in points] == [("progress", 1, 0.5)]


def test_typed_parameter_gets_the_loaded_artifact(dbdir):
    run = typed_inputs.run()
    assert run.steps["typed"].results["return"] == 3


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_bad_max_parallel_is_refused(dbdir, bad):
    with pytest.raises(ConfigError) as err:
        diamond.run(max_parallel=bad)
    assert str(err.value) == f"max_parallel must be a positive integer, got {bad!r}"


def test_max_parallel_one_is_accepted(dbdir):
    assert diamond.run(max_parallel=1).state == "completed"


def test_pipeline_run_shows_its_steps(dbdir):
    run = diamond.run()
    text = run.show(display=False)
    assert text.splitlines()[0] == f"pipeline diamond {run.uid} completed"
    assert "combine" in text and "805" in text


OVERLAP = threading.Barrier(3, timeout=30)


@step
def crunch(context, i: int = 0) -> int:
    import hashlib

    hashlib.sha256(b"x" * (16 << 20)).hexdigest()  # CPU work that releases the GIL
    OVERLAP.wait()  # passes only when all three run at the same time
    return i


@step
def waits(context, i: int = 0) -> int:
    OVERLAP.wait()  # I/O-like: blocked, not computing
    return i


@step
def trivial(context, i: int = 0) -> int:
    return i


@pipeline
def mixed_fan():
    for i in range(20):
        trivial(i=i)
    crunch(i=1)
    crunch(i=2)
    waits(i=3)


def test_cpu_and_io_bound_steps_overlap_among_batched_trivial_ones(dbdir):
    OVERLAP.reset()
    run = mixed_fan.run(max_parallel=3)
    assert run.state == "completed", run.error
    assert len(run.steps) == 23 and all(r.state == "completed" for r in run.steps.values())



ITEM_CALLS: list[tuple[int, int]] = []  # (item, attempt) in call order


@step(retries=2)
def flaky_item(context, x: int, fails: int = 1) -> int:
    ITEM_CALLS.append((x, int(context.labels["attempt"])))
    context.log_metric("attempt_seen", x, step=int(context.labels["attempt"]))
    print(f"item {x} attempt {context.labels['attempt']}")
    if x == 2 and sum(1 for i, _a in ITEM_CALLS if i == 2) <= fails:
        raise RuntimeError(f"item 2 fails attempt {context.labels['attempt']}")
    return 10 * x


@pipeline
def flaky_map(fails: int = 1):
    flaky_item.map(items=[1, 2, 3], item_param="x", fails=fails)


def _items(run, name):
    found = get_run_db().list_runs(uid=run.steps[name].uid, iter=True)
    return {r["metadata"]["iteration"]: r for r in found if r["metadata"]["iteration"]}


def test_retries_of_a_mapped_step_retry_the_failed_item_only(dbdir):
    # compiled, each item is a pod with its own retryStrategy: only item 2 runs again (the
    # whole map retried re-ran items 1 and 3 as well)
    ITEM_CALLS.clear()
    run = flaky_map.run()
    assert run.state == "completed", run.error
    assert sorted(ITEM_CALLS) == [(1, 1), (2, 1), (2, 2), (3, 1)]
    items = _items(run, "flaky_item")
    assert {i: r["status"]["results"]["return"] for i, r in items.items()} == {1: 10, 2: 20, 3: 30}
    assert [items[i]["metadata"]["labels"]["attempt"] for i in (1, 2, 3)] == ["1", "2", "1"]
    log = run.steps["flaky_item"].logs()
    assert "item 2 attempt 1" in log and "item 2 attempt 2" in log  # the step's one log


def _kept_attempts(run, name):
    """The failed attempts kept as their own runs, by (item iteration, attempt)."""
    uid = run.steps[name].uid
    kept = [r for r in get_run_db().list_runs(name=name)
            if r["metadata"].get("annotations", {}).get("item_uid") == uid]
    return {(int(r["metadata"]["annotations"]["item_iteration"]),
             int(r["metadata"]["labels"]["attempt"])): r for r in kept}


def test_a_retried_item_keeps_each_failed_attempt_as_its_own_run(dbdir):
    # the item's record is its last attempt; the failure before it is not overwritten away
    ITEM_CALLS.clear()
    run = flaky_map.run(fails=2)
    assert run.state == "completed", run.error
    kept = _kept_attempts(run, "flaky_item")
    assert sorted(kept) == [(2, 1), (2, 2)]
    for attempt in (1, 2):
        status = kept[(2, attempt)]["status"]
        assert status["state"] == "error" and f"fails attempt {attempt}" in status["error"]
        assert kept[(2, attempt)]["metadata"]["iteration"] == 0
        assert kept[(2, attempt)]["spec"]["pipeline_uid"] == run.uid
    first = kept[(2, 1)]["metadata"]["uid"]
    assert "retry_of" not in kept[(2, 1)]["metadata"]["labels"]
    assert kept[(2, 2)]["metadata"]["labels"]["retry_of"] == first
    item = _items(run, "flaky_item")[2]
    assert item["metadata"]["labels"]["retry_of"] == first  # the last attempt, as a step's
    assert item["status"]["state"] == "completed"
    # each attempt's metric history is its own: the item's holds its last attempt's alone
    db, uid = get_run_db(), run.steps["flaky_item"].uid
    steps = {a: [m["step"] for m in db.get_metrics(kept[(2, a)]["metadata"]["uid"])]
             for a in (1, 2)}
    assert steps == {1: [1], 2: [2]}
    assert [m["step"] for m in db.get_metrics(uid, iter=2)] == [3]
    assert [m["value"] for m in db.get_metrics(uid, iter=1)] == [1]  # untouched


def test_retries_of_a_mapped_step_exhausted_fail_that_item(dbdir):
    ITEM_CALLS.clear()
    run = flaky_map.run(fails=9)
    assert run.state == "error"
    assert [c for c in ITEM_CALLS if c[0] == 2] == [(2, 1), (2, 2), (2, 3)]
    assert (1, 2) not in ITEM_CALLS and (3, 2) not in ITEM_CALLS  # the others ran once
    items = _items(run, "flaky_item")
    status = items[2]["status"]
    assert status["state"] == "error" and "fails attempt 3" in status["error"]


def test_the_live_graph_shows_a_map_step_not_its_items_kept_failed_attempt(dbdir):
    # a retried item's failed attempt is a run of its own (same step name, started after the
    # map's run): the pipeline page must still show the map step's own run and state
    pytest.importorskip("fastapi")
    from mlflowlet.server._live import live_graph

    ITEM_CALLS.clear()
    run = flaky_map.run()
    assert run.state == "completed", run.error
    node = {n["name"]: n for n in live_graph(get_run_db(), run.uid)["nodes"]}["flaky_item"]
    assert (node["uid"], node["state"]) == (run.steps["flaky_item"].uid, "completed")


STUCK_GATE = threading.Event()


@step(timeout=0.2)
def stuck_sweep(context, x: int) -> int:
    if not STUCK_GATE.wait(60):  # bounded: fails rather than hangs
        raise RuntimeError("gate never opened")
    context.log_result("score", x)
    return x


@pipeline
def stuck_hyper():
    stuck_sweep.with_hyper_params({"x": [1, 2]}, selector="max.score")()


def test_a_timed_out_sweep_ends_its_abandoned_iterations_and_records_nothing_after(dbdir):
    # the abandoned sweep's iterations are written in batches (the DB's _transact): they
    # must not reach the run DB once the step's timeout was recorded; the one under way is
    # recorded ended with the step (it stayed `running` while its process lived)
    STUCK_GATE.clear()
    try:
        run = stuck_hyper.run()
    finally:
        STUCK_GATE.set()
    step_uid = run.steps["stuck_sweep"].uid
    assert "timed out after 0.2s" in run.steps["stuck_sweep"].status.error
    abandoned = [t for t in threading.enumerate() if t.name == "mlflowlet-stuck_sweep"]
    for thread in abandoned:
        thread.join(60)
    assert abandoned and not any(t.is_alive() for t in abandoned)
    db = get_run_db()
    items = [r for r in db.list_runs(uid=step_uid, iter=True) if r["metadata"]["iteration"]]
    assert [r["metadata"]["iteration"] for r in items] == [1]  # x=2 never started
    assert items[0]["status"]["state"] == "error"  # not the `completed` its thread reached
    assert "timed out after 0.2s" in items[0]["status"]["error"]
    assert "score" not in items[0]["status"]["results"]
    assert db.read_run(step_uid)["status"]["state"] == "error"


HANG_GATE = threading.Event()
HANG_CALLS: list[int] = []


@step(retries=1, timeout=0.2)
def hangs_once(context, x: int) -> int:
    HANG_CALLS.append(x)
    context.log_metric("call", HANG_CALLS.count(x), step=x)
    if x == 2 and HANG_CALLS.count(2) == 1 and not HANG_GATE.wait(60):
        raise RuntimeError("gate never opened")
    return 10 * x


@pipeline
def hanging_map():
    hangs_once.map(items=[1, 2, 3], item_param="x")


def test_a_map_items_attempt_past_the_timeout_is_retried_alone(dbdir):
    # `timeout` is what one attempt may take: compiled, each item pod's attempt has it as its
    # deadline and retries alone; the other items, and the map as a whole, are not cut short
    HANG_GATE.clear()
    HANG_CALLS.clear()
    try:
        run = hanging_map.run()
    finally:
        HANG_GATE.set()
    assert run.state == "completed", run.error
    assert sorted(HANG_CALLS) == [1, 2, 2, 3]
    items = _items(run, "hangs_once")
    assert {i: r["status"]["results"]["return"] for i, r in items.items()} == {
        1: 10, 2: 20, 3: 30}
    assert items[2]["metadata"]["labels"]["attempt"] == "2"
    uid = run.steps["hangs_once"].uid
    kept = [r for r in get_run_db().list_runs(name="hangs_once")
            if r["metadata"].get("annotations", {}).get("item_uid") == uid]
    assert len(kept) == 1 and "timed out after 0.2s" in kept[0]["status"]["error"]
    # the timed-out attempt's point (logged before its deadline) went with it; the item's is
    # its last attempt's alone
    history = get_run_db().get_metrics(kept[0]["metadata"]["uid"])
    assert [(m["step"], m["value"]) for m in history] == [(2, 1)]
    assert [(m["step"], m["value"]) for m in get_run_db().get_metrics(uid, iter=2)] == [(2, 2)]


@step(timeout=30)
def timed_item(x: int) -> int:
    return x


@pipeline
def timed_map():
    timed_item.map(items=[1, 2], item_param="x")


def test_a_timed_map_that_never_retries_labels_no_attempt(dbdir):
    run = timed_map.run()
    assert run.state == "completed", run.error
    items = _items(run, "timed_item")
    assert sorted(items) == [1, 2]
    assert all("attempt" not in r["metadata"]["labels"] for r in items.values())


def test_a_process_whose_step_timed_out_still_exits(dbdir, tmp_path):
    # the abandoned call never returns: its thread must not keep the interpreter alive
    script = tmp_path / "stuck.py"
    script.write_text(textwrap.dedent("""
        import threading
        from mlflowlet import step

        @step(timeout=0.2)
        def stuck(context):
            threading.Event().wait()

        print(stuck(raise_on_error=False).state, flush=True)
    """))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # a hang fails the test, not the suite
    assert (proc.returncode, proc.stdout) == (0, "error\n"), proc.stderr
