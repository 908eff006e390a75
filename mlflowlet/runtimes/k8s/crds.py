"""Pure builders of the operators' custom resources: Kubeflow ``MPIJob`` and ``SparkApplication``.

Like :mod:`.manifests`: plain inputs in, the dict the API server receives out, no API calls.
The CRD schemas the tests validate them against are in ``tests/schemas``.

References:
    https://github.com/kubeflow/mpi-operator/blob/v0.8.2/pkg/apis/kubeflow/v2beta1/types.go
    https://github.com/kubeflow/spark-operator/blob/master/api/v1beta2/sparkapplication_types.go
"""

from __future__ import annotations

from typing import Any

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
    ssh_auth_mount_path: str = "",
) -> dict[str, Any]:
    """Return an ``MPIJob``: one launcher (running ``mpirun``) and ``replicas`` workers.

    The launcher is created once every worker is ready (``WaitForWorkersReady``: it no longer
    races the workers' sshd), and each replica's ``restartPolicy`` is set at the replica level,
    where the operator reads it (mpi-operator v0.8.2 ``pkg/apis/kubeflow/v2beta1/types.go``
    lines 155-166, 194-197 and 354-361).

    Args:
        name: its name.
        namespace: its namespace.
        labels: its labels.
        launcher: the launcher's pod template.
        worker: the workers' pod template.
        replicas: worker pods.
        slots_per_worker: MPI processes per worker.
        run_policy: the ``runPolicy`` (clean-up, back-off, deadline, TTL).
        ssh_auth_mount_path: where the SSH keys are mounted (``''``: the operator's
            ``/root/.ssh``; a non-root image's user's home).
    """
    group, version, _ = MPI_API
    spec: dict[str, Any] = {
        "slotsPerWorker": slots_per_worker,
        "runPolicy": run_policy,
        "mpiImplementation": "OpenMPI",
        "launcherCreationPolicy": "WaitForWorkersReady",
    }
    if ssh_auth_mount_path:
        spec["sshAuthMountPath"] = ssh_auth_mount_path
    return {
        "apiVersion": f"{group}/{version}",
        "kind": "MPIJob",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            **spec,
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


def spark_service_account(release: str) -> str:
    """Return the Spark service account the operator's Helm chart creates for ``release``.

    The chart names it ``<fullname>-spark``, where fullname is the release name when that
    contains ``spark-operator`` and ``<release>-spark-operator`` otherwise
    (kubeflow/spark-operator v2.5.2 ``charts/spark-operator-chart/templates/spark/_helpers.tpl``
    lines 20-33, ``templates/_helpers.tpl`` "spark-operator.fullname"): ``spark-operator-spark``
    for ``helm install spark-operator spark-operator/spark-operator``. There is no ``spark``
    service account on a default install.
    """
    full = release if "spark-operator" in release else f"{release}-spark-operator"
    return f"{full[:63].rstrip('-')}-spark"


def spark_pod(
    opts: PodOptions,
    env: list[dict[str, Any]],
    labels: dict[str, str],
    cores: int,
    memory: str,
    webhook: bool,
) -> dict[str, Any]:
    """Return a SparkApplication's ``driver`` or ``executor`` pod spec.

    The environment goes into ``envVars`` and ``envSecretKeyRefs``, which the operator passes
    to spark-submit as ``spark.kubernetes.driverEnv.*`` / ``...secretKeyRef.*`` settings
    (v2.5.2 ``internal/controller/sparkapplication/submission.go`` lines 433-436, 694-702):
    they reach the pods without the operator's mutating webhook. With ``webhook``, the fields
    only the webhook applies (``envFrom``, tolerations, volume mounts, security contexts;
    ``internal/webhook/sparkpod_defaulter.go`` lines 141-173) are set too.
    """
    pod: dict[str, Any] = {"cores": cores, "memory": memory, "labels": dict(labels)}
    plain = {e["name"]: e["value"] for e in env if "value" in e}
    refs = {
        e["name"]: {
            "name": e["valueFrom"]["secretKeyRef"]["name"],
            "key": e["valueFrom"]["secretKeyRef"]["key"],
        }
        for e in env
        if "valueFrom" in e
    }
    if plain:
        pod["envVars"] = plain
    if refs:
        pod["envSecretKeyRefs"] = refs
    if "cpu" in opts.limits:
        pod["coreLimit"] = opts.limits["cpu"]
    if not webhook:
        return pod
    if opts.env_from:
        pod["envFrom"] = [{"secretRef": {"name": n}} for n in opts.env_from]
    if opts.tolerations:
        pod["tolerations"] = list(opts.tolerations)
    if opts.volumes:
        pod["volumeMounts"] = [m for _, m in opts.volumes]
    if opts.pod_security:
        pod["podSecurityContext"] = dict(opts.pod_security)
        pod["securityContext"] = dict(opts.container_security)
    return pod


def webhook_fields(opts: PodOptions, gpu: bool) -> list[str]:
    """Return the settings in ``opts`` only the operator's mutating webhook applies."""
    wanted = {
        "with_secret_env(secret) without key= (envFrom)": bool(opts.env_from),
        "with_tolerations": bool(opts.tolerations),
        "with_volume": bool(opts.volumes),
        "with_security_context": bool(opts.pod_security),
        "with_limits(gpus=...)": gpu,
    }
    return [name for name, used in wanted.items() if used]


def spark_application(
    name: str,
    namespace: str,
    labels: dict[str, str],
    *,
    image: str,
    main_file: str,
    arguments: list[str],
    spark_version: str,
    driver: dict[str, Any],
    executor: dict[str, Any],
    retries: int,
    spark_conf: dict[str, str],
    ttl: int | None,
    volumes: list[dict[str, Any]],
    node_selector: dict[str, str] | None = None,
    image_pull_secrets: list[str] | None = None,
    image_pull_policy: str | None = None,
) -> dict[str, Any]:
    """Return a Python ``SparkApplication`` in cluster mode.

    Args:
        name: its name.
        namespace: its namespace.
        labels: its labels.
        image: the driver's and executors' image.
        main_file: ``mainApplicationFile``.
        arguments: the main file's arguments.
        spark_version: the Spark version of the image.
        driver: the driver pod (:func:`spark_pod` plus ``serviceAccount``).
        executor: the executor pods (:func:`spark_pod` plus ``instances``).
        retries: restarts on failure (0: ``restartPolicy: Never``).
        spark_conf: ``sparkConf`` settings.
        ttl: ``timeToLiveSeconds`` (None: kept).
        volumes: the pods' volumes (applied by the webhook).
        node_selector: ``nodeSelector`` (spark-submit's ``spark.kubernetes.node.selector.*``).
        image_pull_secrets: the registry Secrets.
        image_pull_policy: ``imagePullPolicy``, or None.
    """
    group, version, _ = SPARK_API
    spec: dict[str, Any] = {
        "type": "Python",
        "pythonVersion": "3",
        "mode": "cluster",
        "image": image,
        "mainApplicationFile": main_file,
        **({"arguments": list(arguments)} if arguments else {}),
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
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if image_pull_secrets:
        spec["imagePullSecrets"] = list(image_pull_secrets)
    if image_pull_policy:
        spec["imagePullPolicy"] = image_pull_policy
    return {
        "apiVersion": f"{group}/{version}",
        "kind": "SparkApplication",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }
