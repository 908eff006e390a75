"""The local runtime: handler runs, failures, hyper-parameters, selectors, parallel iterations."""

from __future__ import annotations

import csv
import io
import json
import threading
import time

import pytest

from mlflowlet import RunObject, get_run_db, new_function, new_runner, new_task
from mlflowlet.errors import ConfigError, HyperParamError, RunError, UnknownBackendError
from mlflowlet.runtimes.local import LocalRuntime


def training(context, p1: int = 1, p2: int = 2):
    context.log_result("accuracy", p1 * 2)
    context.log_result("loss", p1 * 3 - p2)
    context.set_label("framework", "sklearn")
    context.log_artifact("model.txt", body=f"weights {p1}".encode())


def scored(context, x: float = 0.0):
    """loss is (x - 2)^2, score is -loss: both extremes are known."""
    context.log_result("loss", (x - 2) ** 2)
    context.log_result("score", -((x - 2) ** 2))


def flaky(context, x: int = 0):
    if x % 2:
        raise ValueError(f"odd x={x}")
    context.log_result("x", x)


# -- plain runs ---------------------------------------------------------------------------------


def test_new_runner_empty_command_is_local():
    assert isinstance(new_runner(), LocalRuntime)
    assert new_function is new_runner


def test_handler_run_is_completed_and_stored():
    run = new_runner().run(handler=training, params={"p1": 5})
    assert isinstance(run, RunObject) and run.state == "completed"
    assert run.results == {"accuracy": 10, "loss": 13}
    assert run.metadata.name == "training" and run.metadata.labels["kind"] == "local"
    stored = get_run_db().read_run(run.uid, project=run.metadata.project)
    assert stored["status"]["state"] == "completed"
    assert stored["metadata"]["labels"]["framework"] == "sklearn"
    assert stored["spec"]["handler"].endswith("training")
    assert run.artifact("model.txt").get() == b"weights 5"


def test_handler_by_module_name(tmp_path):
    (tmp_path / "handlers_for_local.py").write_text(
        "def double(context, x: int = 1):\n    return x * 2\n"
    )
    assert new_runner("handlers_for_local.py:double").run(params={"x": 4}).results == \
        {"return": 8}
    assert new_runner().run(handler="handlers_for_local.py:double").results == {"return": 2}


def test_no_handler_is_a_clear_error():
    with pytest.raises(RunError, match="needs a handler"):
        new_runner().run()


def test_task_name_project_labels_and_params_merge():
    task = new_task("named", project="proj", params={"p1": 1, "p2": 1}, labels={"a": "1"})
    run = new_runner().run(task, handler=training, params={"p1": 3}, labels={"b": 2})
    assert run.metadata.name == "named" and run.metadata.project == "proj"
    assert run.spec.params == {"p1": 3, "p2": 1}
    assert {"a": "1", "b": "2"}.items() <= run.metadata.labels.items()
    assert task.spec.params == {"p1": 1, "p2": 1}  # the task itself is not changed


def test_a_failing_handler_raises_run_error_with_the_run():
    def fails(context):
        raise ZeroDivisionError("division by zero here")

    with pytest.raises(RunError) as info:
        new_runner().run(handler=fails)
    run = info.value.run
    assert isinstance(run, RunObject) and run.state == "error"
    assert "ZeroDivisionError: division by zero here" in str(info.value)
    assert "\n" not in str(info.value)
    assert "Traceback" in run.status.error
    assert get_run_db().read_run(run.uid)["status"]["state"] == "error"


def test_raise_on_error_false_returns_the_failed_run():
    def fails(context):
        raise RuntimeError("nope")

    run = new_runner().run(handler=fails, raise_on_error=False)
    assert run.state == "error" and "RuntimeError: nope" in run.status.error


def test_a_failing_handler_keeps_what_it_logged_before():
    def half_done(context):
        context.log_result("epoch", 3)
        context.log_metric("loss", 0.5)
        context.log_artifact("checkpoint.txt", body=b"ckpt")
        print("about to fail")
        raise ValueError("late failure")

    run = new_runner().run(handler=half_done, raise_on_error=False)
    stored = RunObject.model_validate(get_run_db().read_run(run.uid))
    assert stored.state == "error" and stored.results == {"epoch": 3}
    assert [a["key"] for a in stored.status.artifacts] == ["checkpoint.txt"]
    assert stored.artifact("checkpoint.txt").get() == b"ckpt"
    assert [m["value"] for m in stored.metric_history("loss")] == [0.5]
    log = stored.logs()
    assert "about to fail" in log and "ValueError: late failure" in log


def test_system_exit_zero_is_completed_and_nonzero_is_error():
    def exits_ok(context):
        raise SystemExit(0)

    def exits_bad(context):
        raise SystemExit(3)

    assert new_runner().run(handler=exits_ok).state == "completed"
    assert new_runner().run(handler=exits_bad, raise_on_error=False).state == "error"


def test_unknown_runtime_scheme_names_it_and_the_known_ones():
    with pytest.raises(UnknownBackendError) as info:
        new_runner("gopher://host/fn")
    message = str(info.value)
    assert "gopher://" in message and "dask://" in message and "\n" not in message
    assert isinstance(info.value, ConfigError)


def test_unknown_runtime_kind_names_it():
    with pytest.raises(UnknownBackendError, match="'warp'"):
        new_runner(kind="warp")


# -- hyper-parameters ------------------------------------------------------------------------------


def test_grid_runs_every_combination_as_child_iterations():
    task = new_task().with_hyper_params({"p1": [1, 2], "p2": [10, 20, 30]}, selector="min.loss")
    run = new_runner().run(task, handler=training)
    children = get_run_db().list_runs(uid=run.uid, iter=True)
    iterations = sorted(r["metadata"]["iteration"] for r in children)
    assert iterations == [0, 1, 2, 3, 4, 5, 6]
    params = sorted((r["spec"]["params"]["p1"], r["spec"]["params"]["p2"])
                    for r in children if r["metadata"]["iteration"])
    assert params == [(1, 10), (1, 20), (1, 30), (2, 10), (2, 20), (2, 30)]
    assert all(r["spec"]["parent_uid"] == run.uid for r in children if r["metadata"]["iteration"])
    # min loss: p1=1, p2=30 -> 3 - 30 = -27
    best = run.results["best_iteration"]
    assert run.results["loss"] == -27 and run.results["accuracy"] == 2
    assert children_params(children, best) == {"p1": 1, "p2": 30}


def children_params(children, iteration):
    return next(r["spec"]["params"] for r in children if r["metadata"]["iteration"] == iteration)


def test_iteration_table_and_artifact():
    task = new_task().with_hyper_params({"p1": [5, 2, 3]}, "min.loss")
    run = new_runner().run(task, handler=training)
    table = run.status.iterations
    assert table[0][:3] == ["iter", "state", "param.p1"]
    assert "output.loss" in table[0] and "output.accuracy" in table[0]
    assert [row[0] for row in table[1:]] == [1, 2, 3]
    assert {row[1] for row in table[1:]} == {"completed"}
    loss_col = table[0].index("output.loss")
    assert [row[loss_col] for row in table[1:]] == [13, 4, 7]
    text = run.artifact("iteration_results").get().decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == table[0] and len(rows) == 4
    assert run.results["best_iteration"] == 2 and run.results["loss"] == 4
    stored = get_run_db().read_run(run.uid)
    assert stored["status"]["iterations"] == json.loads(json.dumps(table))


def test_list_strategy_zips_the_lists():
    task = new_task().with_hyper_params({"p1": [1, 2, 3], "p2": [3, 2, 1]}, "max.accuracy",
                                        strategy="list")
    run = new_runner().run(task, handler=training)
    assert len(run.status.iterations) == 4
    assert run.results["best_iteration"] == 3 and run.results["accuracy"] == 6


def test_random_strategy_is_seedable():
    def sample(seed):
        task = new_task().with_hyper_params({"x": list(range(100))}, "min.loss", strategy="random",
                                            max_iterations=5, seed=seed)
        run = new_runner().run(task, handler=scored)
        return [row[2] for row in run.status.iterations[1:]]

    first, again, other = sample(7), sample(7), sample(8)
    assert len(first) == 5 and first == again and first != other


def test_param_file_csv_and_json(tmp_path):
    (tmp_path / "params.csv").write_text("p1,p2\n1,10\n2,20\n4,5\n3,40\n")
    run = new_runner().run(new_task().with_param_file("params.csv", "max.accuracy"),
                           handler=training)
    assert run.results["best_iteration"] == 3 and run.results["accuracy"] == 8
    (tmp_path / "params.json").write_text(json.dumps([{"x": 1}, {"x": 2.5}]))
    run = new_runner().run(new_task().with_param_file("params.json", "min.loss"),
                           handler=scored)
    assert run.results["best_iteration"] == 2


def test_a_missing_param_file_names_it():
    with pytest.raises(HyperParamError, match="nothere.csv"):
        new_runner().run(new_task().with_param_file("nothere.csv"), handler=training)


@pytest.mark.parametrize(("selector", "best_x"), [
    ("min.loss", 2), ("max.loss", -3), ("max.score", 2), ("min.score", -3), ("score", 2),
])
def test_selector_min_and_max_with_negative_values(selector, best_x):
    task = new_task().with_hyper_params({"x": [-3, -1, 2, 4]}, selector)
    run = new_runner().run(task, handler=scored)
    best = run.results["best_iteration"]
    assert run.status.iterations[best][2] == best_x


def test_a_selector_naming_no_logged_result_fails_the_parent():
    task = new_task().with_hyper_params({"x": [1, 2]}, "max.accuracy")
    with pytest.raises(RunError, match="'accuracy'") as info:
        new_runner().run(task, handler=scored)
    assert "best_iteration" not in info.value.run.results
    assert len(info.value.run.status.iterations) == 3


def test_a_failing_iteration_does_not_stop_the_others():
    task = new_task().with_hyper_params({"x": [0, 1, 2, 3, 4]}, "max.x")
    run = new_runner().run(task, handler=flaky)
    assert run.state == "completed"
    states = [row[1] for row in run.status.iterations[1:]]
    assert states == ["completed", "error", "completed", "error", "completed"]
    assert run.results["best_iteration"] == 5 and run.results["x"] == 4
    assert "2 of 5 iteration(s) failed" in run.status.error
    failed = get_run_db().read_run(run.uid, iter=2)
    assert "ValueError: odd x=1" in failed["status"]["error"]


def test_all_iterations_failing_fails_the_parent():
    task = new_task().with_hyper_params({"x": [1, 3]})
    with pytest.raises(RunError, match="no iteration succeeded"):
        new_runner().run(task, handler=flaky)


def test_max_errors_stops_launching_and_fails_the_parent():
    task = new_task().with_hyper_params({"x": [1, 3, 5, 7, 0, 2]}, max_errors=2)
    run = new_runner().run(task, handler=flaky, raise_on_error=False)
    assert run.state == "error"
    assert len(run.status.iterations) == 3  # header + the two failures
    assert "max_errors" in run.status.error and "2 of 2 iteration(s) failed" in run.status.error


def test_stop_condition_stops_launching_new_iterations():
    task = new_task().with_hyper_params(
        {"x": [0, 1, 2, 3, 4, 5]}, "min.loss", stop_condition="loss<=1"
    )
    run = new_runner().run(task, handler=scored)
    assert run.state == "completed"
    assert [row[2] for row in run.status.iterations[1:]] == [0, 1]
    assert "stop condition" in run.results["stopped"]


def test_hyper_run_with_a_bad_value_is_refused_before_running():
    with pytest.raises(HyperParamError, match="'x'"):
        new_task().with_hyper_params({"x": 3})
    with pytest.raises(HyperParamError, match="equal length"):
        new_task().with_hyper_params({"x": [1, 2], "y": [1]}, strategy="list")


def test_parallel_iterations_run_in_threads_with_isolated_contexts():
    barrier = threading.Barrier(4)
    seen = {}
    lock = threading.Lock()

    def handler(context, x: int = 0):
        barrier.wait(timeout=30)  # only passes when 4 iterations run at the same time
        print(f"output of iteration {context.iteration}")
        with lock:
            seen[context.iteration] = (threading.get_ident(), context.get_param("x"))
        context.log_result("x", x)
        context.set_label("own", str(x))

    task = new_task().with_hyper_params({"x": [10, 20, 30, 40]}, "max.x", parallel=4)
    run = new_runner().run(task, handler=handler)
    assert run.results["best_iteration"] == 4
    assert len({ident for ident, _ in seen.values()}) == 4
    assert {it: x for it, (_, x) in seen.items()} == {1: 10, 2: 20, 3: 30, 4: 40}
    db = get_run_db()
    for it, x in ((1, 10), (2, 20), (3, 30), (4, 40)):
        child = db.read_run(run.uid, iter=it)
        assert child["status"]["results"] == {"x": x}
        assert child["metadata"]["labels"]["own"] == str(x)
    log = run.logs()
    for it in range(1, 5):
        assert log.count(f"output of iteration {it}") == 1


def test_children_artifacts_go_to_iteration_folders(dbdir):
    task = new_task().with_hyper_params({"p1": [1, 2]}, "max.accuracy")
    run = new_runner().run(task, handler=training)
    base = dbdir / "artifacts" / "default" / run.uid
    assert (base / "1" / "model.txt").read_bytes() == b"weights 1"
    assert (base / "2" / "model.txt").read_bytes() == b"weights 2"
    assert (base / "iteration_results.csv").is_file()
    assert run.output("model.txt") == str(base / "2" / "model.txt")


# -- when runs are written ---------------------------------------------------------------------


class _RecordingDB:
    """The real run DB, noting each commit and signalling when a flushed result lands."""

    def __init__(self, db):
        self._db, self.states = db, []
        self.flushed = threading.Event()

    def __getattr__(self, name):
        return getattr(self._db, name)

    def commit_run(self, run, *args, **kw):
        self._db.commit_run(run, *args, **kw)
        self.states.append(run["status"]["state"])
        if run["status"]["state"] == "running" and "started" in run["status"]["results"]:
            self.flushed.set()


def test_a_quick_run_is_written_when_it_starts_and_when_it_ends():
    db = _RecordingDB(get_run_db())
    new_runner().run(handler=training, db=db)
    assert db.states == ["running", "completed"]


def test_what_a_lasting_run_logs_is_written_within_the_flush_interval(monkeypatch):
    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "0.05")
    db = _RecordingDB(get_run_db())
    release = threading.Event()
    seen = {}

    def slow(context):
        context.log_result("started", 1)  # buffered: nothing but the flush thread writes it
        seen["released"] = release.wait(timeout=30)

    worker = threading.Thread(target=lambda: seen.update(run=new_runner().run(handler=slow, db=db)))
    worker.start()
    try:
        assert db.flushed.wait(timeout=30)
        stored = get_run_db().list_runs(name="slow")
        assert [(r["status"]["state"], r["status"]["results"]) for r in stored] == [
            ("running", {"started": 1})
        ]
    finally:
        release.set()
        worker.join(timeout=30)
    assert seen["released"] and seen["run"].state == "completed"
    assert db.states[0] == "running" and db.states[-1] == "completed"
    assert get_run_db().read_run(seen["run"].uid)["status"]["state"] == "completed"


def test_hyper_parent_records_the_handler_code_hash_like_its_children():
    run = new_runner().run(new_task(handler=training).with_hyper_params({"p1": [1, 2]}))
    child = get_run_db().read_run(run.uid, iter=1)["status"]
    assert len(run.status.code_hash) == 64 and run.status.code_hash == child["code_hash"]


@pytest.mark.parametrize("command", ["", "train.py"])
def test_gpus_on_a_runtime_without_pods_is_a_clear_error(command):
    with pytest.raises(ConfigError, match=r"the (local|subprocess) runtime cannot use gpus"):
        new_runner(command).with_limits(gpus=1)


def test_what_a_sweep_iteration_logs_is_written_while_it_still_runs(monkeypatch):
    monkeypatch.setenv("MLFLOWLET_FLUSH_INTERVAL", "0.2")
    monkeypatch.setenv("MLFLOWLET_HEARTBEAT_TIMEOUT", "3600")  # no heartbeat within the test
    release, seen = threading.Event(), {}

    def slow(context, x: int = 0):
        context.log_result("x", x)
        context.commit()  # into the sweep's batch: nothing but the flush thread writes it now
        release.wait(timeout=60)

    task = new_task().with_hyper_params({"x": [7]}, strategy="list")
    worker = threading.Thread(target=lambda: seen.update(run=new_runner().run(task, handler=slow)))
    worker.start()
    try:
        deadline = time.monotonic() + 20  # well below the 30 s of a heartbeat
        while time.monotonic() < deadline:
            rows = [r for r in get_run_db().list_runs(iter=True) if r["metadata"]["iteration"]]
            if rows and rows[0]["status"]["results"] == {"x": 7}:
                break
            time.sleep(0.05)  # polling the DB file, not synchronising
        else:
            raise AssertionError("the iteration's result never reached the DB while it ran")
        assert rows[0]["status"]["state"] == "running"
    finally:
        release.set()
        worker.join(timeout=60)
    assert seen["run"].state == "completed"
