"""The Dask runtime on a real LocalCluster (2 worker processes on 127.0.0.1, shared by the file)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest

distributed = pytest.importorskip("distributed")

from mlflowlet import get_run_db, new_runner, new_task  # noqa: E402
from mlflowlet.errors import ConfigError, RunError  # noqa: E402
from mlflowlet.runtimes.dask import DaskRuntime, parse_address  # noqa: E402


def _local_cluster(n_workers):
    return distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )


@pytest.fixture(scope="module")
def cluster():
    cluster = _local_cluster(2)
    yield cluster
    DaskRuntime(cluster=cluster).close()  # the client the runtimes of this file shared
    try:
        cluster.close()
    except KeyError:  # distributed's own race: a worker's removal seen after it was forgotten
        pass


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture
def runner(cluster, client):
    yield new_runner(kind="dask", cluster=cluster)
    client.wait_for_workers(2, timeout=60)  # a test that killed a worker leaves the cluster whole


# handlers (module level: shipped by value, the workers never import this file) -----------------
def train(context, lr: float = 0.1, epochs: int = 2):
    print(f"training with lr={lr}")
    for step in range(epochs):
        context.log_metric("loss", 1.0 / (step + 1 + lr))
    context.log_artifact("weights.txt", body=f"lr={lr}".encode())
    return {"accuracy": 1 - lr, "pid": os.getpid()}


def score(x: int):
    return {"loss": (x - 42) ** 2, "pid": os.getpid()}


def explode(context, x: int = 1):
    context.log_result("before", x)
    raise ValueError(f"boom at x={x}")


def hold(context, x: int, tag: str):
    """Tell the test this iteration started (and where), then wait for the test's go."""
    worker = distributed.get_worker()
    started = distributed.Queue(f"started-{tag}", client=context.dask_client)
    started.put([x, worker.address, os.getpid()])
    release = distributed.Event(f"release-{tag}", client=context.dask_client)
    if not release.wait(timeout=60):
        raise TimeoutError("the test never released the iteration")
    return {"x": x, "pid": os.getpid()}


def fan_out(context, n: int = 4):
    client = context.dask_client
    futures = client.map(lambda i: i * i, range(n), pure=False)
    distributed.secede()  # free this worker's slot while waiting on our own tasks
    values = client.gather(futures)
    distributed.rejoin()
    return {"total": sum(values), "client_type": type(client).__name__}


def wait_on_own_task(context, x: int):
    """Submit a sub-task and wait on it without seceding (all worker threads run iterations)."""
    return {"y": context.dask_client.submit(lambda v: v + 1, x, pure=False).result(timeout=30)}


def with_secret(context):
    return {"token_ok": context.get_secret("TOKEN") == "s3cr3t-value"}


# URLs ------------------------------------------------------------------------------------------
def test_dask_url_picks_the_dask_runtime():
    runner = new_runner(command="dask://")
    assert isinstance(runner, DaskRuntime) and runner.kind == "dask" and runner.address == ""
    assert new_runner(command="dask://sched.example:9000").address == "tcp://sched.example:9000"


def test_address_without_port_uses_8786_and_keeps_other_schemes():
    assert parse_address("dask://sched") == "tcp://sched:8786"
    assert parse_address("dask://tls://sched:8787") == "tls://sched:8787"
    assert parse_address("dask://") == ""


# runs ------------------------------------------------------------------------------------------
def test_run_executes_on_a_worker_and_the_caller_stores_it(runner, cluster, tmp_path):
    run = runner.run(handler=train, params={"lr": 0.25, "epochs": 3})
    assert run.state == "completed", run.error
    assert run.results["accuracy"] == 0.75
    assert run.results["pid"] != os.getpid()
    assert run.metadata.annotations["dask.worker"] in cluster.scheduler.workers
    assert run.metadata.labels["kind"] == "dask"
    db = get_run_db()
    stored = db.read_run(run.uid, project=run.metadata.project)
    assert stored["status"]["state"] == "completed"
    assert "training with lr=0.25" in run.logs()
    assert [m["step"] for m in run.metric_history("loss")] == [0, 1, 2]
    assert run.artifact("weights.txt").get() == b"lr=0.25"
    assert run.status.artifacts[0]["uri"].startswith(str(tmp_path))


def test_sweep_of_100_iterations_selects_the_best(runner, cluster):
    task = new_task(hyper_params={"x": list(range(100))}, selector="min.loss")
    run = runner.run(task, handler=score)
    assert run.state == "completed", run.error
    assert run.results["best_iteration"] == 43 and run.results["loss"] == 0
    assert len(run.status.iterations) == 101  # header + one row per iteration
    children = [r for r in get_run_db().list_runs(uid=run.uid, iter=True)
                if r["metadata"]["iteration"]]
    assert len(children) == 100
    assert {r["status"]["state"] for r in children} == {"completed"}
    # every iteration ran in a worker process of the cluster (how the scheduler spread them
    # over the workers is its choice, not a property of the runtime)
    workers = {r["metadata"]["annotations"]["dask.worker"] for r in children}
    assert workers and workers <= set(cluster.scheduler.workers)
    assert os.getpid() not in {r["status"]["results"]["pid"] for r in children}


def test_raising_handler_keeps_the_worker_traceback(runner):
    with pytest.raises(RunError, match="boom at x=7") as info:
        runner.run(handler=explode, params={"x": 7})
    run = info.value.run
    assert run.state == "error"
    assert "Traceback" in run.error and "in explode" in run.error
    assert run.results == {"before": 7}  # what the handler logged before raising is kept
    assert "ValueError: boom at x=7" in run.logs()
    failed = runner.run(handler=explode, params={"x": 8}, raise_on_error=False)
    assert failed.state == "error" and "boom at x=8" in failed.error


def test_sweep_keeps_good_iterations_when_some_raise(runner):
    def odd_fails(x: int):
        if x % 2:
            raise ValueError(f"odd {x}")
        return {"score": x}

    task = new_task(hyper_params={"x": [1, 2, 3, 4]}, selector="max.score")
    run = runner.run(task, handler=odd_fails)
    assert run.state == "completed"
    assert run.results["best_iteration"] == 4 and run.results["score"] == 4
    assert "2 of 4 iteration(s) failed" in run.error


def test_inline_secrets_reach_the_worker_but_not_the_db(runner):
    task = new_task(secrets=("inline", {"TOKEN": "s3cr3t-value"}))
    run = runner.run(task, handler=with_secret)
    assert run.results == {"token_ok": True}
    stored = get_run_db().read_run(run.uid, project=run.metadata.project)
    assert "s3cr3t-value" not in str(stored)


def test_context_dask_client_submits_from_the_handler(runner):
    run = runner.run(handler=fan_out, params={"n": 5})
    assert run.state == "completed", run.error
    assert run.results == {"total": 0 + 1 + 4 + 9 + 16, "client_type": "Client"}


# failures of the cluster -----------------------------------------------------------------------
def _sweep_in_thread(runner, tag, n):
    out: dict = {}
    task = new_task(hyper_params={"x": list(range(n))}, params={"tag": tag})

    def go():
        try:
            out["run"] = runner.run(task, handler=hold, raise_on_error=False)
        except BaseException as exc:  # surfaced by the test
            out["error"] = exc

    thread = threading.Thread(target=go)
    thread.start()
    return thread, out


def _children(run):
    rows = get_run_db().list_runs(uid=run.uid, iter=True)
    return {r["metadata"]["iteration"]: r for r in rows if r["metadata"]["iteration"]}


@pytest.mark.timeout(120)
def test_killed_worker_mid_sweep_reruns_the_lost_iteration(runner, client):
    tag = uuid.uuid4().hex
    thread, out = _sweep_in_thread(runner, tag, 6)
    started = distributed.Queue(f"started-{tag}", client=client)
    x, address, pid = started.get(timeout=60)  # one iteration is running on `address`
    os.kill(pid, signal.SIGKILL)
    distributed.Event(f"release-{tag}", client=client).set()
    thread.join(90)
    assert "error" not in out, out.get("error")
    run = out["run"]
    assert run.state == "completed", run.error
    children = _children(run)
    assert len(children) == 6
    assert {c["status"]["state"] for c in children.values()} == {"completed"}
    lost = children[x + 1]  # iterations count from 1, x from 0
    assert lost["status"]["results"]["pid"] != pid  # it ran again on a live worker
    assert lost["metadata"]["annotations"]["dask.worker"] != address


@pytest.mark.timeout(120)
def test_killed_worker_without_retries_marks_its_iterations_error_keeping_the_others(
    runner, client, cluster
):
    tag = uuid.uuid4().hex
    cluster.scheduler.allowed_failures = 0  # the first worker death fails its tasks (KilledWorker)
    try:
        thread, out = _sweep_in_thread(runner, tag, 6)
        started = distributed.Queue(f"started-{tag}", client=client)
        x, _, pid = started.get(timeout=60)
        os.kill(pid, signal.SIGKILL)
        client.wait_for_workers(2, timeout=60)  # restarted: its tasks were failed by then
        distributed.Event(f"release-{tag}", client=client).set()
        thread.join(90)
    finally:
        cluster.scheduler.allowed_failures = 3
    run = out["run"]
    children = _children(run)
    assert len(children) == 6
    failed = {i for i, c in children.items() if c["status"]["state"] == "error"}
    assert x + 1 in failed and len(failed) < 6
    assert all("KilledWorker" in children[i]["status"]["error"] for i in failed)
    kept = {i for i, c in children.items() if c["status"]["state"] == "completed"}
    assert kept == set(children) - failed and kept
    assert run.state == "completed" and f"{len(failed)} of 6 iteration(s) failed" in run.error


@pytest.mark.timeout(60)
def test_timeout_fails_a_run_that_runs_too_long(runner, client):
    tag = uuid.uuid4().hex
    try:
        with pytest.raises(RunError, match="timeout of 1 s") as info:
            runner.run(handler=hold, params={"x": 0, "tag": tag}, timeout=1)
    finally:
        distributed.Event(f"release-{tag}", client=client).set()  # free the worker thread
    stored = get_run_db().read_run(info.value.run.uid, project=info.value.run.metadata.project)
    assert stored["status"]["state"] == "error"


@pytest.mark.timeout(60)
def test_unreachable_scheduler_fails_within_the_connect_timeout_naming_it():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runner = new_runner(command=f"dask://127.0.0.1:{port}", connect_timeout=1)
    with pytest.raises(RunError, match=f"tcp://127.0.0.1:{port}") as info:
        runner.run(handler=score, params={"x": 1})
    stored = get_run_db().read_run(info.value.run.uid, project=info.value.run.metadata.project)
    assert stored["status"]["state"] == "error" and str(port) in stored["status"]["error"]


@pytest.mark.timeout(60)
def test_scheduler_url_without_workers_fails_after_lost_timeout():
    with _local_cluster(0) as empty:
        address = empty.scheduler_address  # tcp://127.0.0.1:port
        runner = new_runner(command="dask://" + address.removeprefix("tcp://"), lost_timeout=1)
        assert runner.address == address
        try:
            with pytest.raises(RunError, match="no workers") as info:
                runner.run(handler=score, params={"x": 1})
        finally:
            runner.close()
    assert address in info.value.run.error


@pytest.mark.timeout(90)
def test_scheduler_lost_mid_run_is_a_run_error_naming_it():
    tag = uuid.uuid4().hex
    doomed = _local_cluster(1)
    address = doomed.scheduler_address
    client = distributed.Client(doomed, set_as_default=False)
    try:
        runner = new_runner(kind="dask", client=client, lost_timeout=2)
        thread, out = _sweep_in_thread(runner, tag, 1)
        distributed.Queue(f"started-{tag}", client=client).get(timeout=60)
        doomed.close()  # scheduler and worker gone while the iteration runs
        thread.join(60)
    finally:
        client.close()
        doomed.close()
    run = out["run"]
    assert run.state == "error"
    child = _children(run)[1]
    assert child["status"]["state"] == "error" and address in child["status"]["error"]


# handlers that cannot travel -------------------------------------------------------------------
def test_unpicklable_handler_names_what_cannot_be_pickled(runner):
    lock = threading.Lock()

    def guarded(x: int = 1):
        with lock:
            return x

    with pytest.raises(ConfigError, match=r"closure variable 'lock' \(_thread\.lock\)"):
        runner.run(handler=guarded)


def test_module_the_workers_cannot_import_is_a_run_error(runner, tmp_path, monkeypatch):
    (tmp_path / "client_only_helpers.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # importable here, not on the workers
    import client_only_helpers

    def uses_helper(x: int = 2):
        return client_only_helpers.double(x)

    run = runner.run(handler=uses_helper, raise_on_error=False)
    assert run.state == "error"
    assert "cannot load the handler" in run.error and "client_only_helpers" in run.error
    assert runner.run(handler=score, params={"x": 42}).results["loss"] == 0  # cluster still fine
    sys.modules.pop("client_only_helpers", None)


def test_worker_db_lets_the_workers_write_the_run(runner, tmp_path):
    shared = tmp_path / "shared" / "runs.db"
    dask_runner = DaskRuntime(cluster=runner.cluster, worker_db=str(shared))
    run = dask_runner.run(handler=train, params={"lr": 0.5})
    assert run.state == "completed"
    written = get_run_db(str(shared)).read_run(run.uid, project=run.metadata.project)
    assert written["status"]["state"] == "completed"
    assert written["metadata"]["annotations"]["dask.worker"]
    assert b"training with lr=0.5" in get_run_db(str(shared)).get_log(run.uid)


# the process-wide local cluster (in a child process: it starts its own workers) ---------------
@pytest.mark.timeout(120)
def test_dask_url_starts_one_local_cluster_and_ships_main_handlers(tmp_path):
    script = tmp_path / "sweep_main.py"
    script.write_text(textwrap.dedent("""
        from mlflowlet import new_runner, new_task

        def square(x: int):
            return {"y": x * x}

        if __name__ == "__main__":
            first, second = new_runner("dask://"), new_runner("dask://")
            run = first.run(new_task(hyper_params={"x": [1, 2, 3]}, selector="max.y"),
                            handler=square)
            again = second.run(handler=square, params={"x": 5})
            workers = first.client.scheduler_info()["workers"].values()
            print(run.results["y"], again.results["y"], first.client is second.client,
                  sorted(w["host"] for w in workers))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=100, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    y, y_again, same, *rest = out.stdout.split()
    assert (y, y_again, same) == ("9", "25", "True")
    assert " ".join(rest) == "['127.0.0.1', '127.0.0.1']"  # two local workers by default


@pytest.mark.timeout(120)
def test_example_dask_sweep_runs_and_records_every_iteration(examples_dir):
    out = subprocess.run([sys.executable, "dask_sweep.py"], capture_output=True, text=True,
                         timeout=100, cwd=examples_dir)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "completed: 16 iterations" in out.stdout
    assert "best iteration 7:" in out.stdout  # lr=0.01, layers=3
    runs = get_run_db().list_runs(name="dask-sweep", iter=True)
    assert len(runs) == 17 and {r["metadata"]["labels"]["kind"] for r in runs} == {"dask"}


@pytest.mark.timeout(120)
def test_sweep_whose_handlers_wait_on_their_own_tasks_does_not_deadlock(runner):
    task = new_task(hyper_params={"x": [1, 2, 3, 4]}, selector="max.y")
    run = runner.run(task, handler=wait_on_own_task)
    assert run.state == "completed", run.error
    assert run.results["y"] == 5 and run.results["best_iteration"] == 4
