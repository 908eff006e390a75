"""What one step's container gets besides its arguments: environment and resources."""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import CompileError

EXEC_CONFIG_ENV = "MLFLOWLET_EXEC_CONFIG"
# a container step's output types, in its run spec's annotations (read by ``--check``)
OUTPUTS_ANNOTATION = "mlflowlet/container-outputs"
# a Kubernetes resource quantity (k8s.io/apimachinery/pkg/api/resource/quantity.go)
_QUANTITY = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$")


def check_resources(node: Any) -> None:
    """Refuse resources Kubernetes cannot read (names the step, the value and the form).

    Raises:
        CompileError: a cpu/memory that is no quantity, a gpu count that is no whole number.
    """
    res = node.spec.resources
    for key in ("cpu", "memory"):
        if key in res and not _QUANTITY.match(str(res[key])):
            raise CompileError(
                f"step {node.name!r} ({node.spec.source}): resources {key}={res[key]!r} is not "
                "a Kubernetes quantity (e.g. '500m', '2', '1Gi')"
            )
    gpu = res.get("gpu")
    if gpu is not None and (isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0):
        raise CompileError(f"step {node.name!r}: resources gpu={gpu!r} must be a whole number")


# label keys the engines and mlflowlet set on pods: not a step's to set
RESERVED_LABELS = ("mlflowlet/", "workflows.argoproj.io/", "pipelines.kubeflow.org/")


def pod_labels(node: Any, options: Any) -> dict[str, str]:
    """Return the pod labels of a step: the ``labels=`` compile option, then its own, sanitised.

    A step's labels are run labels: recorded exactly (they travel in the run spec), but the API
    server refuses ``owner: Jane Doe`` as a pod label, so on the pod each key and value is made
    valid (``owner: Jane-Doe``) and mlflowlet's and the engines' keys are dropped
    (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set).
    The ``labels=`` option is checked when it is given (:func:`make_options`).
    """
    from .._k8s_labels import sanitise_labels

    own = {str(k): str(v) for k, v in node.spec.labels.items()}
    return {**options.labels, **sanitise_labels(own, RESERVED_LABELS)}


def container_env(node: Any, options: Any) -> dict[str, str]:
    """Return a step container's environment: its run spec as JSON, the DB, the options' env.

    The run spec (``MLFLOWLET_EXEC_CONFIG``) keeps its order: hyper-parameter axes expand in
    it, so iterations are numbered as locally.
    """
    spec = node.spec
    config: dict[str, Any] = {
        "metadata": {
            "name": node.name,
            "labels": {
                "mlflowlet/pipeline": options.pipeline_name,
                "mlflowlet/step": node.name,
                **{k: str(v) for k, v in spec.labels.items()},
            },
        }
    }
    if spec.container is not None:
        outputs = json.dumps(dict(spec.container.outputs), sort_keys=True)
        config["metadata"]["annotations"] = {OUTPUTS_ANNOTATION: outputs}
    run_spec: dict[str, Any] = {}
    if node.hyper is not None:
        h = node.hyper
        run_spec.update(
            {
                "hyper_params": {k: list(v) for k, v in h.hyper_params.items()},
                "selector": h.selector,
                "strategy": h.strategy,
            }
        )
        for key in ("max_iterations", "max_errors", "parallel", "seed"):
            if getattr(h, key) is not None:
                run_spec[key] = getattr(h, key)
    secrets = {**options.secrets, **options.step(node.name).get("secrets", {})}
    if secrets:
        run_spec["secret_sources"] = [{"kind": "env", "source": ",".join(sorted(secrets))}]
    if spec.timeout is not None:
        run_spec["timeout"] = spec.timeout
    if run_spec:
        config["spec"] = run_spec
    env = {EXEC_CONFIG_ENV: json.dumps(config, separators=(",", ":"))}  # order kept: grid axes
    if options.dbpath:
        env["MLFLOWLET_DBPATH"] = options.dbpath
    if options.artifact_path:
        env["MLFLOWLET_ARTIFACT_PATH"] = options.artifact_path
    env.update(options.env)
    env.update(options.step(node.name).get("env", {}))
    return dict(sorted(env.items()))
