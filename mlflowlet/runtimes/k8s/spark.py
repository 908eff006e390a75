"""The Spark runtime: a ``SparkApplication`` (``sparkoperator.k8s.io/v1beta2``) per run.

With the Spark operator installed, each run is a Python SparkApplication whose driver runs the
mlflowlet entrypoint (``main_file``, by default the ``_spark_main.py`` of mlflowlet as installed
in a ``python:3.11`` image by :func:`mlflowlet.build.build_image`) with the run spec in its
environment; the handler gets the driver's session as ``context.spark``. Hyper-parameter
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
DEFAULT_MAIN_FILE = (
    "local:///usr/local/lib/python3.11/site-packages/mlflowlet/runtimes/_spark_main.py"
)


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
        custom_api: a ``kubernetes.client.CustomObjectsApi`` (default: from the kube config).
        **options: the options of :class:`~mlflowlet.runtimes.k8s.base.KubeRuntime`.
    """

    kind = "spark"
    workload = SPARK

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
        custom_api: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(command, custom_api=custom_api, **options)
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
        driver = crds.spark_pod(self.pod, env, labels, self.driver_cores, self.driver_memory)
        driver["serviceAccount"] = self.pod.service_account or "spark"
        executor = crds.spark_pod(self.pod, [], labels, self.executor_cores, self.executor_memory)
        executor["instances"] = self.executors
        if self._gpu:
            executor["gpu"] = dict(self._gpu)
        return crds.spark_application(
            name,
            self.namespace,
            labels,
            image=self.image,
            main_file=self.main_file,
            spark_version=self.spark_version,
            driver=driver,
            executor=executor,
            retries=self.backoff_limit,
            spark_conf=self.spark_conf,
            ttl=self.ttl_seconds_after_finished,
            volumes=[v for v, _ in self.pod.volumes],
        )
