"""The Spark runtime: a ``SparkApplication`` (``sparkoperator.k8s.io/v1beta2``) per run.

With the Spark operator installed, each run is a Python SparkApplication. A handler runs in the
driver through the mlflowlet entrypoint (``main_file``: ``/opt/mlflowlet/spark_main.py``, which
the ``spark`` preset of :func:`mlflowlet.build.build_image` puts there) and gets the driver's
session as ``context.spark``; a plain script is the ``mainApplicationFile`` itself, its arguments
the application's ``arguments``. The run spec reaches the driver through ``envVars`` and
``envSecretKeyRefs``, which spark-submit applies, so no mutating webhook is needed; settings only
the webhook applies (whole-Secret env, tolerations, volumes, security contexts, GPUs) are refused
unless ``webhook=True``. The driver runs as the service account the operator's Helm chart creates
(``<release>-spark``: ``spark-operator-spark`` for the release ``spark-operator``). Hyper-parameter
iterations run one application each. ``SparkRuntime(master='local[*]')`` is local Spark:
:class:`~mlflowlet.runtimes.spark_local.LocalSparkRuntime`.
"""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from ...model import RunObject
from . import crds
from .base import KubeRuntime
from .client import Workload

__all__ = ["DEFAULT_MAIN_FILE", "SPARK", "SparkRuntime", "spark_state"]

GROUP, VERSION, PLURAL = crds.SPARK_API
DEFAULT_MAIN_FILE = "local:///opt/mlflowlet/spark_main.py"  # the spark build preset's copy
SCRIPT_DIR = "/mlflowlet"  # where build_image puts a runner's script (its WORKDIR)


def spark_state(obj: dict, name: str) -> tuple[str, str]:
    """Return ``('succeeded' | 'failed' | '', reason)`` from a SparkApplication's status."""
    app = (obj.get("status") or {}).get("applicationState") or {}
    state = app.get("state", "")
    if state == "COMPLETED":
        return "succeeded", ""
    if state in ("FAILED", "SUBMISSION_FAILED"):
        return "failed", (
            f"the SparkApplication {name} {state}: {app.get('errorMessage', '')}"
        ).rstrip(": ")
    return "", ""


SPARK = Workload(
    "SparkApplication",
    f"{GROUP}/{VERSION}",
    PLURAL,
    "spark-kubernetes-driver",
    "spark-role=driver,sparkoperator.k8s.io/app-name={name}",
    spark_state,
)


class SparkRuntime(KubeRuntime):
    """Runs each run as a SparkApplication (``master='local[*]'``: local Spark instead).

    Args:
        command: a file in the image holding the handler (or ``'spark://image#file.py'``).
        master: ``'local[*]'`` (or ``'local[N]'``) to run here with pyspark
            (:class:`~mlflowlet.runtimes.spark_local.LocalSparkRuntime`); empty for the Spark
            operator on Kubernetes.
        spark_version: the Spark version of the image.
        main_file: the driver's main file (it must run ``mlflowlet.entrypoint.main``).
        executors: executor pods.
        executor_cores: cores per executor.
        executor_memory: JVM memory per executor (``'1g'``).
        driver_cores: cores of the driver.
        driver_memory: JVM memory of the driver.
        spark_conf: extra ``spark.*`` settings.
        operator_release: the Helm release of the Spark operator, which names the default
            service account (``<release>-spark``; see
            :func:`~mlflowlet.runtimes.k8s.crds.spark_service_account`).
        webhook: the operator's mutating webhook is installed: allow the settings only it
            applies (whole-Secret env, tolerations, volumes, security contexts, GPUs).
        custom_api: a ``kubernetes.client.CustomObjectsApi`` (default: from the kube config).
        **options: the options of :class:`~mlflowlet.runtimes.k8s.base.KubeRuntime`.
    """

    kind = "spark"
    workload = SPARK
    build_preset = "spark"

    def __new__(cls, command: str = "", master: str = "", **options: Any) -> Any:
        """Return local Spark for ``master='local[...]'``, else a SparkApplication runtime."""
        if master and not master.startswith("local"):
            raise ConfigError(
                f"master {master!r}: use 'local[*]' to run here, or leave it empty "
                "to run a SparkApplication on Kubernetes"
            )
        if master:
            from ..spark_local import LocalSparkRuntime

            return LocalSparkRuntime(command, master=master, **options)
        return super().__new__(cls)

    def __init__(  # noqa: PLR0913 - one keyword per application setting
        self,
        command: str = "",
        master: str = "",
        spark_version: str = "3.5.1",
        main_file: str = DEFAULT_MAIN_FILE,
        executors: int = 1,
        executor_cores: int = 1,
        executor_memory: str = "1g",
        driver_cores: int = 1,
        driver_memory: str = "1g",
        spark_conf: dict[str, str] | None = None,
        operator_release: str = "spark-operator",
        webhook: bool = False,
        custom_api: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(command, custom_api=custom_api, **options)
        from .checks import check_dns_label

        check_dns_label(operator_release, "operator_release")
        self.operator_release, self.webhook = operator_release, bool(webhook)
        for what, value in (
            ("executors", executors),
            ("executor_cores", executor_cores),
            ("driver_cores", driver_cores),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{what}={value!r} must be a whole number >= 1")
        self.master, self.spark_version, self.main_file = "", spark_version, main_file
        self.executors, self.executor_cores = executors, executor_cores
        self.executor_memory = executor_memory
        self.driver_cores, self.driver_memory = driver_cores, driver_memory
        self.spark_conf = {str(k): str(v) for k, v in (spark_conf or {}).items()}
        self._gpu: dict[str, Any] | None = None

    def with_limits(
        self,
        cpu: Any = None,
        memory: Any = None,
        gpus: int | None = None,
        gpu_type: str = "nvidia.com/gpu",
    ) -> SparkRuntime:
        """Set ``cpu`` (the pods' ``coreLimit``) and ``gpus`` per executor.

        Spark sizes memory itself: use ``executor_memory=`` / ``driver_memory=``.
        """
        if memory is not None:
            raise ConfigError(
                "with_limits(memory=...): Spark sizes its JVMs itself; give "
                "executor_memory='4g' / driver_memory='2g' to the runtime"
            )
        super().with_limits(cpu=cpu, gpus=gpus, gpu_type=gpu_type)
        if gpus:
            self._gpu = {"name": gpu_type, "quantity": int(gpus)}
        return self

    def _workload_manifest(
        self,
        run: RunObject,
        name: str,
        env: list[dict[str, Any]],
        labels: dict[str, str],
        iterations: list[dict] | None,
        parallel: int,
    ) -> dict:
        if iterations is not None:
            raise ConfigError("a SparkApplication runs one iteration; iterations run one each")
        needs = crds.webhook_fields(self.pod, bool(self._gpu))
        if needs and not self.webhook:
            raise ConfigError(
                f"{', '.join(needs)}: only the Spark operator's mutating webhook applies this to "
                "the pods, and without it the setting would be dropped silently; install the "
                "operator with its webhook and pass webhook=True, or drop the setting"
            )
        driver = crds.spark_pod(
            self.pod, env, labels, self.driver_cores, self.driver_memory, self.webhook
        )
        driver["serviceAccount"] = self.pod.service_account or crds.spark_service_account(
            self.operator_release
        )
        user_env = [
            e for e in env if e["name"] in self.pod.env or e["name"] in self.pod.secret_refs
        ]
        executor = crds.spark_pod(
            self.pod, user_env, labels, self.executor_cores, self.executor_memory, self.webhook
        )
        executor["instances"] = self.executors
        if self._gpu:
            executor["gpu"] = dict(self._gpu)
        main_file, arguments = self._main(run)
        return crds.spark_application(
            name,
            self.namespace,
            labels,
            image=self.image,
            main_file=main_file,
            arguments=arguments,
            spark_version=self.spark_version,
            driver=driver,
            executor=executor,
            retries=self.backoff_limit,
            spark_conf=self.spark_conf,
            ttl=self.ttl_seconds_after_finished,
            volumes=[v for v, _ in self.pod.volumes] if self.webhook else [],
            node_selector=self.pod.node_selector,
            image_pull_secrets=self.pod.image_pull_secrets,
            image_pull_policy=self.pod.pull_policy(self.image),
        )

    def _main(self, run: RunObject) -> tuple[str, list[str]]:
        """Return ``(mainApplicationFile, arguments)``: the entrypoint, or the script itself."""
        command = self.entry_command(run)
        if command[:3] == ["python", "-m", "mlflowlet.entrypoint"]:
            return self.main_file, command[3:]
        script, *args = command[1:]
        if "://" not in script and not script.startswith("/"):
            script = f"{(self.pod.working_dir or SCRIPT_DIR).rstrip('/')}/{script}"
        return (script if "://" in script else f"local://{script}"), args
