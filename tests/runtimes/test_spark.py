"""The Spark runtime: a SparkApplication valid against the CRD subset; local Spark if installed."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("kubernetes")

from _k8s_fakes import FakeCluster, FakeCoreV1Api, FakeCustomObjectsApi, pod_json  # noqa: E402

from mlflowlet import new_runner, new_task  # noqa: E402
from mlflowlet.errors import ConfigError, MissingDependencyError  # noqa: E402
from mlflowlet.runtimes.spark import SparkRuntime  # noqa: E402

SCHEMA = json.loads(
    (Path(__file__).parents[1] / "schemas" / "sparkapplication-v1beta2.schema.json").read_text())
HAS_PYSPARK = importlib.util.find_spec("pyspark") is not None
HAS_JAVA = shutil.which("java") is not None


def test_spark_application_matches_the_crd_subset():
    rt = new_runner(command="spark://repo/spark-py:3.5#etl.py", executors=3, executor_cores=2,
                    executor_memory="4g", spark_conf={"spark.sql.shuffle.partitions": 64})
    rt.with_limits(cpu="2", gpus=1).with_node_selector(pool="spark").with_volume("/d", pvc="d")
    task = new_task(params={"day": "2024-01-01"}).with_secrets("inline", {"PW": "hunter2-x"})
    app = rt.run(task, handler="etl", dry_run=True)
    jsonschema.validate(app, SCHEMA)
    assert "hunter2-x" not in json.dumps(app)
    spec = app["spec"]
    assert (spec["type"], spec["mode"], spec["image"]) == ("Python", "cluster",
                                                           "repo/spark-py:3.5")
    assert spec["mainApplicationFile"].endswith("mlflowlet/runtimes/_spark_main.py")
    assert spec["executor"]["instances"] == 3 and spec["executor"]["gpu"] == {
        "name": "nvidia.com/gpu", "quantity": 1}
    assert spec["sparkConf"] == {"spark.sql.shuffle.partitions": "64"}
    env = {e["name"]: e for e in spec["driver"]["env"]}
    assert json.loads(env["MLFLOWLET_EXEC_CONFIG"]["value"])["spec"]["handler"] == "etl"
    assert env["MLFLOWLET_EXEC_SECRETS"]["valueFrom"]["secretKeyRef"]["key"] == \
        "MLFLOWLET_EXEC_SECRETS"


def test_a_spark_override_that_breaks_the_crd_is_caught_by_the_schema():
    rt = SparkRuntime("etl.py", image="repo/spark-py:3.5")
    rt.apply(lambda m: m["spec"].update(mode="local"))
    app = rt.run(handler="etl", dry_run=True)
    with pytest.raises(jsonschema.ValidationError, match="'local' is not one of"):
        jsonschema.validate(app, SCHEMA)


def test_gpus_on_local_spark_are_refused():
    with pytest.raises(ConfigError, match="gpus: the spark runtime with master='local.*cannot"):
        SparkRuntime(master="local[*]").with_limits(gpus=1)


def test_spark_memory_goes_through_the_jvm_settings():
    with pytest.raises(ConfigError, match="executor_memory"):
        SparkRuntime("etl.py", image="repo/spark-py:3.5").with_limits(memory="4Gi")
    with pytest.raises(ConfigError, match="executors=0"):
        SparkRuntime("etl.py", image="repo/spark-py:3.5", executors=0)


def test_spark_watch_follows_the_driver_pod():
    record_less = [[pod_json("etl-driver", "Running")],
                   [pod_json("etl-driver", "Failed",
                             terminated={"exitCode": 1, "reason": "Error"},
                             container="spark-kubernetes-driver")]]
    cluster = FakeCluster(frames=record_less)
    custom = FakeCustomObjectsApi(cluster, [{}, {"applicationState": {
        "state": "FAILED", "errorMessage": "driver container failed with ExitCode: 1"}}])
    rt = SparkRuntime("etl.py", image="repo/spark-py:3.5", poll_interval=0.01,
                      core_api=FakeCoreV1Api(cluster), custom_api=custom)
    run = rt.run(handler="etl", watch=False, raise_on_error=False)
    assert run.state == "error" and "etl-driver ended Failed (exit code 1" in run.status.error
    assert cluster.selector.startswith("spark-role=driver,sparkoperator.k8s.io/app-name=")
    assert cluster.log_calls[0][1] == "spark-kubernetes-driver"


def test_local_spark_without_pyspark_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark now raises ImportError
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(MissingDependencyError, match=r"mlflowlet\[spark\]"):
        SparkRuntime(master="local[*]").run(handler=lambda: None)


@pytest.mark.skipif(not HAS_JAVA, reason="no Java runtime here: local Spark needs a JVM")
@pytest.mark.skipif(not HAS_PYSPARK, reason="pyspark is not installed: `make test` installs it "
                    "where Java is present")
def test_local_spark_runs_the_handler_with_a_session():
    def count(context, n: int = 10):
        return {"count": context.spark.range(n).count()}

    run = SparkRuntime(master="local[1]").run(handler=count, params={"n": 7})
    assert run.state == "completed" and run.status.results["count"] == 7
