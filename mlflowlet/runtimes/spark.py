"""The Spark runtime: a ``SparkApplication`` (``sparkoperator.k8s.io/v1beta2``), or local Spark.

On Kubernetes (the Spark operator installed), each run is a Python SparkApplication whose driver
runs the mlflowlet entrypoint (``main_file``, by default the ``_spark_main.py`` of mlflowlet as
installed in a ``python:3.11`` image by :func:`mlflowlet.build.build_image`) with the run spec
in its environment; the handler gets the driver's session as ``context.spark``. With
``master='local[*]'`` (pyspark installed) the handler runs in this process with a local
SparkSession. Hyper-parameter iterations run one application each.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, MissingDependencyError
from ..model import RunObject
from . import _k8s
from ._k8s_custom import CustomWorkloadRuntime
from .base import Runtime

__all__ = ["DEFAULT_MAIN_FILE", "SparkRuntime"]

GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
DEFAULT_MAIN_FILE = (
    "local:///usr/local/lib/python3.11/site-packages/mlflowlet/runtimes/_spark_main.py"
)


class SparkRuntime(CustomWorkloadRuntime):
    """Runs each run as a SparkApplication, or locally with ``master='local[*]'``.

    Args:
        command: a file in the image holding the handler (or ``'spark://image#file.py'``).
        master: ``'local[*]'`` (or ``'local[N]'``) to run here with pyspark; empty for the
            Spark operator on Kubernetes.
        spark_version: the Spark version of the image.
        main_file: the driver's main file (it must run ``mlflowlet.entrypoint.main``).
        executors: executor pods.
        executor_cores: cores per executor.
        executor_memory: JVM memory per executor (``'1g'``).
        driver_cores: cores of the driver.
        driver_memory: JVM memory of the driver.
        spark_conf: extra ``spark.*`` settings.
        custom_api: a ``kubernetes.client.CustomObjectsApi`` (default: from the kube config).
        **options: the options of :class:`~mlflowlet.runtimes.kubejob.KubeJobRuntime`.
    """

    kind = "spark"
    workload_kind = "SparkApplication"
    container_name = "spark-kubernetes-driver"
    group, version, plural = GROUP, VERSION, PLURAL

    def __init__(
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
        if master and not master.startswith("local"):
            raise ConfigError(
                f"master {master!r}: use 'local[*]' to run here, or leave it empty "
                "to run a SparkApplication on Kubernetes"
            )
        for what, value in (
            ("executors", executors),
            ("executor_cores", executor_cores),
            ("driver_cores", driver_cores),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{what}={value!r} must be a whole number >= 1")
        self.master, self.spark_version, self.main_file = master, spark_version, main_file
        self.executors, self.executor_cores, self.executor_memory = (
            executors,
            executor_cores,
            executor_memory,
        )
        self.driver_cores, self.driver_memory = driver_cores, driver_memory
        self.spark_conf = {str(k): str(v) for k, v in (spark_conf or {}).items()}
        self.supports_gpus = not master  # local Spark has no GPU scheduling
        self._gpu: dict[str, Any] | None = None

    def _gpu_where(self) -> str:
        return f" with master={self.master!r} (local Spark)"

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

    # local Spark ------------------------------------------------------------------------------
    def _before_run(self, run: RunObject, handler: Any, db: Any, **options: Any) -> None:
        if not self.master:
            return super()._before_run(run, handler, db, **options)
        options.pop("watch", None)
        Runtime._before_run(self, run, handler, db, **options)
        try:
            import pyspark  # noqa: F401
        except ImportError:
            raise MissingDependencyError("pyspark", "spark") from None

    def _execute(self, run: RunObject, handler: Any, db: Any) -> RunObject:
        if not self.master:
            return super()._execute(run, handler, db)
        from pyspark.sql import SparkSession

        from .local import LocalRuntime

        SparkSession.builder.master(self.master).appName(run.metadata.name).getOrCreate()
        return LocalRuntime(self.command)._execute(run, handler, db)  # context.spark finds it

    # the SparkApplication ---------------------------------------------------------------------
    def _pod(self, env: list[Any], labels: dict, cores: int, memory: str) -> dict[str, Any]:
        pod: dict[str, Any] = {"cores": cores, "memory": memory, "labels": dict(labels)}
        if env:
            pod["env"] = _k8s.serialize(env)
        if self._env_from:
            pod["envFrom"] = [{"secretRef": {"name": n}} for n in self._env_from]
        if "cpu" in self._limits:
            pod["coreLimit"] = self._limits["cpu"]
        if self._node_selector:
            pod["nodeSelector"] = dict(self._node_selector)
        if self._tolerations:
            pod["tolerations"] = _k8s.serialize(self._tolerations)
        if self._volumes:
            pod["volumeMounts"] = [m for _, m in self._volumes]
        return pod

    def _workload_manifest(
        self,
        run: RunObject,
        name: str,
        env: list[Any],
        labels: dict,
        iterations: list | None,
        parallel: int,
    ) -> dict:
        if iterations is not None:
            raise ConfigError("a SparkApplication runs one iteration; iterations run one each")
        driver = self._pod(env, labels, self.driver_cores, self.driver_memory)
        driver["serviceAccount"] = self._service_account or "spark"
        executor = self._pod([], labels, self.executor_cores, self.executor_memory)
        executor["instances"] = self.executors
        if self._gpu:
            executor["gpu"] = dict(self._gpu)
        spec: dict[str, Any] = {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": self.image,
            "mainApplicationFile": self.main_file,
            "sparkVersion": self.spark_version,
            "restartPolicy": {"type": "OnFailure" if self.backoff_limit else "Never"},
            "driver": driver,
            "executor": executor,
        }
        if self.backoff_limit:
            spec["restartPolicy"].update(
                onFailureRetries=self.backoff_limit, onSubmissionFailureRetries=self.backoff_limit
            )
        if self.spark_conf:
            spec["sparkConf"] = dict(sorted(self.spark_conf.items()))
        if self.ttl_seconds_after_finished is not None:
            spec["timeToLiveSeconds"] = self.ttl_seconds_after_finished
        if self._volumes:
            spec["volumes"] = [v for v, _ in self._volumes]
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SparkApplication",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": spec,
        }

    def _state_of(self, status: dict, name: str) -> tuple[str, str]:
        app = status.get("applicationState") or {}
        state = app.get("state", "")
        if state == "COMPLETED":
            return "succeeded", ""
        if state in ("FAILED", "SUBMISSION_FAILED"):
            return "failed", (
                f"the SparkApplication {name} {state}: {app.get('errorMessage', '')}"
            ).rstrip(": ")
        return "", ""

    def _list_pods(self, name: str) -> list[Any]:
        selector = f"spark-role=driver,sparkoperator.k8s.io/app-name={name}"
        pods = self.core_api.list_namespaced_pod(self.namespace, label_selector=selector).items
        return sorted(pods, key=lambda p: p.metadata.name)
