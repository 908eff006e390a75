"""Pure builders of the operators' custom resources: Kubeflow ``MPIJob`` and ``SparkApplication``.

Like :mod:`.manifests`: plain inputs in, the dict the API server receives out, no API calls.
The CRD schemas the tests validate them against are in ``tests/schemas``.

References:
    https://github.com/kubeflow/mpi-operator/blob/v0.8.2/pkg/apis/kubeflow/v2beta1/types.go
    https://github.com/kubeflow/spark-operator/blob/master/api/v1beta2/sparkapplication_types.go
"""

from __future__ import annotations

from typing import Any

from .manifests import serialize
from .options import PodOptions

MPI_API = ("kubeflow.org", "v2beta1", "mpijobs")
SPARK_API = ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")


def mpijob_manifest(
    name: str,
    namespace: str,
    labels: dict[str, str],
    *,
    launcher: dict[str, Any],
    worker: dict[str, Any],
    replicas: int,
    slots_per_worker: int,
    run_policy: dict[str, Any],
) -> dict[str, Any]:
    """Return an ``MPIJob``: one launcher (running ``mpirun``) and ``replicas`` workers.

    Args:
        name: its name.
        namespace: its namespace.
        labels: its labels.
        launcher: the launcher's pod template.
        worker: the workers' pod template.
        replicas: worker pods.
        slots_per_worker: MPI processes per worker.
        run_policy: the ``runPolicy`` (clean-up, back-off, deadline, TTL).
    """
    group, version, _ = MPI_API
    return {
        "apiVersion": f"{group}/{version}",
        "kind": "MPIJob",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "slotsPerWorker": slots_per_worker,
            "runPolicy": run_policy,
            "mpiImplementation": "OpenMPI",
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "restartPolicy": "Never", "template": launcher},
                "Worker": {"replicas": replicas, "restartPolicy": "Never", "template": worker},
            },
        },
    }


def mpi_run_policy(
    clean_pod_policy: str, backoff_limit: int, ttl: int | None, deadline: int | None
) -> dict[str, Any]:
    """Return an MPIJob's ``runPolicy``."""
    policy: dict[str, Any] = {"cleanPodPolicy": clean_pod_policy, "backoffLimit": backoff_limit}
    if ttl is not None:
        policy["ttlSecondsAfterFinished"] = ttl
    if deadline:
        policy["activeDeadlineSeconds"] = deadline
    return policy


def spark_pod(
    opts: PodOptions,
    env: list[dict[str, Any]],
    labels: dict[str, str],
    cores: int,
    memory: str,
) -> dict[str, Any]:
    """Return a SparkApplication's ``driver`` or ``executor`` pod spec."""
    pod: dict[str, Any] = {"cores": cores, "memory": memory, "labels": dict(labels)}
    if env:
        pod["env"] = serialize(env)
    if opts.env_from:
        pod["envFrom"] = [{"secretRef": {"name": n}} for n in opts.env_from]
    if "cpu" in opts.limits:
        pod["coreLimit"] = opts.limits["cpu"]
    if opts.node_selector:
        pod["nodeSelector"] = dict(opts.node_selector)
    if opts.tolerations:
        pod["tolerations"] = list(opts.tolerations)
    if opts.volumes:
        pod["volumeMounts"] = [m for _, m in opts.volumes]
    return pod


def spark_application(
    name: str,
    namespace: str,
    labels: dict[str, str],
    *,
    image: str,
    main_file: str,
    spark_version: str,
    driver: dict[str, Any],
    executor: dict[str, Any],
    retries: int,
    spark_conf: dict[str, str],
    ttl: int | None,
    volumes: list[dict[str, Any]],
) -> dict[str, Any]:
    """Return a Python ``SparkApplication`` in cluster mode.

    Args:
        name: its name.
        namespace: its namespace.
        labels: its labels.
        image: the driver's and executors' image.
        main_file: ``mainApplicationFile``.
        spark_version: the Spark version of the image.
        driver: the driver pod (:func:`spark_pod` plus ``serviceAccount``).
        executor: the executor pods (:func:`spark_pod` plus ``instances``).
        retries: restarts on failure (0: ``restartPolicy: Never``).
        spark_conf: ``sparkConf`` settings.
        ttl: ``timeToLiveSeconds`` (None: kept).
        volumes: the pods' volumes.
    """
    group, version, _ = SPARK_API
    spec: dict[str, Any] = {
        "type": "Python",
        "pythonVersion": "3",
        "mode": "cluster",
        "image": image,
        "mainApplicationFile": main_file,
        "sparkVersion": spark_version,
        "restartPolicy": {"type": "OnFailure" if retries else "Never"},
        "driver": driver,
        "executor": executor,
    }
    if retries:
        spec["restartPolicy"].update(onFailureRetries=retries, onSubmissionFailureRetries=retries)
    if spark_conf:
        spec["sparkConf"] = dict(sorted(spark_conf.items()))
    if ttl is not None:
        spec["timeToLiveSeconds"] = ttl
    if volumes:
        spec["volumes"] = list(volumes)
    return {
        "apiVersion": f"{group}/{version}",
        "kind": "SparkApplication",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }
