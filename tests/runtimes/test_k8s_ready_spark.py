"""SparkApplications as the Spark operator runs them (#20), each fix with the source it follows.

Sources are kubeflow/spark-operator v2.5.2 (``git show v2.5.2:<path>``); manifests are validated
against that release's whole SparkApplication CRD (strict).
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("jsonschema")
pytest.importorskip("kubernetes")

from _crd import validate  # noqa: E402

from mlflowlet import new_runner, new_task  # noqa: E402
from mlflowlet.errors import ConfigError  # noqa: E402
from mlflowlet.runtimes.k8s.crds import spark_service_account  # noqa: E402
from mlflowlet.runtimes.spark import SparkRuntime  # noqa: E402


def _app(command="etl.py", handler="etl", runtime=None, **kw):
    rt = runtime or SparkRuntime(command, image="repo/spark:3.5", **kw)
    task = new_task(name="etl", params={"day": "d1"}).with_secrets("inline", {"PW": "pw-1234"})
    return rt, rt.run(task, handler=handler, dry_run=True)


def test_the_spec_reaches_the_driver_without_the_webhook():
    """``envVars`` / ``envSecretKeyRefs`` become spark-submit ``--conf`` settings
    (``spark.kubernetes.driverEnv.*``, ``spark.kubernetes.driver.secretKeyRef.*``:
    internal/controller/sparkapplication/submission.go lines 433-436 and 694-702), while
    ``env`` is applied only by the mutating webhook (internal/webhook/sparkpod_defaulter.go
    ``addEnvVars``, lines 241-259), which is optional."""
    _, app = _app()
    driver = app["spec"]["driver"]
    assert "env" not in driver and "envFrom" not in driver
    assert json.loads(driver["envVars"]["MLFLOWLET_EXEC_CONFIG"])["spec"]["params"] == {"day": "d1"}
    assert driver["envSecretKeyRefs"]["MLFLOWLET_EXEC_SECRETS"] == {
        "name": app["metadata"]["name"] + "-secrets", "key": "MLFLOWLET_EXEC_SECRETS"}
    assert "pw-1234" not in json.dumps(app)
    validate(app)


@pytest.mark.parametrize("setting", [
    lambda rt: rt.with_volume("/data", pvc="data"),
    lambda rt: rt.with_tolerations({"key": "spot", "operator": "Exists"}),
    lambda rt: rt.with_secret_env("s3-creds"),
    lambda rt: rt.with_security_context(),
    lambda rt: rt.with_limits(gpus=1),
])
def test_a_setting_only_the_webhook_applies_is_refused_without_it(setting):
    """The webhook's mutations (sparkpod_defaulter.go lines 141-173: volumes, envFrom,
    tolerations, GPU, security contexts) never happen without it: refused, not dropped."""
    rt = SparkRuntime("etl.py", image="repo/spark:3.5")
    setting(rt)
    with pytest.raises(ConfigError, match="only the Spark operator's mutating webhook.*webhook="):
        _app(runtime=rt)
    allowed = SparkRuntime("etl.py", image="repo/spark:3.5", webhook=True)
    setting(allowed)
    validate(_app(runtime=allowed)[1])


def test_the_driver_runs_as_the_charts_service_account():
    """The chart creates ``<fullname>-spark`` (charts/spark-operator-chart/templates/spark/
    _helpers.tpl lines 20-33; fullname is the release when it contains ``spark-operator``,
    templates/_helpers.tpl): no ``spark`` service account exists on a default install."""
    _, app = _app()
    assert app["spec"]["driver"]["serviceAccount"] == "spark-operator-spark"
    assert spark_service_account("ml") == "ml-spark-operator-spark"
    assert spark_service_account("my-spark-operator") == "my-spark-operator-spark"
    _, other = _app(operator_release="ml")
    assert other["spec"]["driver"]["serviceAccount"] == "ml-spark-operator-spark"
    rt = SparkRuntime("etl.py", image="repo/spark:3.5").with_service_account("etl-runner")
    assert _app(runtime=rt)[1]["spec"]["driver"]["serviceAccount"] == "etl-runner"


def test_a_plain_script_is_the_main_application_file_with_its_arguments():
    """A script with no handler went through the entrypoint's main file, which has nothing to
    run; ``mainApplicationFile`` and ``arguments`` are spark-submit's own
    (api/v1beta2/sparkapplication_types.go lines 66-71)."""
    _, app = _app(command="etl.py --day 2024-01-01", handler=None)
    assert app["spec"]["mainApplicationFile"] == "local:///mlflowlet/etl.py"
    assert app["spec"]["arguments"] == ["--day", "2024-01-01"]
    _, handled = _app()
    assert handled["spec"]["mainApplicationFile"] == "local:///opt/mlflowlet/spark_main.py"
    assert "arguments" not in handled["spec"]
    validate(app)


def test_image_pull_secrets_and_policy_reach_the_application():
    """``imagePullSecrets`` and ``imagePullPolicy`` are application fields spark-submit applies
    (submission.go lines 239-251); a mutable tag is pulled ``Always``."""
    rt = SparkRuntime("etl.py", image="repo/spark:3.5").with_image_pull_secrets("regcred")
    _, app = _app(runtime=rt)
    assert app["spec"]["imagePullSecrets"] == ["regcred"]
    assert app["spec"]["imagePullPolicy"] == "Always"
    validate(app)


def test_example_mpi_spark_is_valid_for_both_operators(examples_dir):
    import subprocess
    import sys

    import yaml

    out = subprocess.run([sys.executable, "mpi_spark.py"], cwd=examples_dir, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for doc in yaml.safe_load_all(out.stdout):
        if doc:
            validate(doc)


def test_local_spark_is_its_own_runtime():
    from mlflowlet.runtimes.spark_local import LocalSparkRuntime

    rt = new_runner(kind="spark", master="local[2]", spark_conf={"spark.ui.enabled": "false"})
    assert type(rt) is LocalSparkRuntime and rt.spark_conf == {"spark.ui.enabled": "false"}
    assert type(new_runner(kind="spark", image="repo/spark:3.5")) is SparkRuntime
    with pytest.raises(ConfigError, match="master 'yarn'"):
        SparkRuntime(master="yarn")
