"""Run mlflowlet tasks from a plain ``@dsl.pipeline``: :func:`mlrun_op` (alias :func:`run_op`).

For users who write their pipelines in the kfp DSL and want each step tracked by mlflowlet::

    from kfp import dsl
    from mlflowlet.kfp import mlrun_op

    def mlrun_train(p1, p2):
        return mlrun_op("training", command="training.py", handler="my_job",
                        params={"p1": p1, "p2": p2}, outputs=["model.txt", "dataset"])

    def mlrun_validate(modelfile):
        return mlrun_op("validation", command="validation.py", handler="validate",
                        inputs={"model.txt": modelfile})

    @dsl.pipeline(name="train-and-validate")
    def pipe(p1: int = 5, p2: str = "text"):
        train = mlrun_train(p1, p2)
        mlrun_validate(train.outputs["model-txt"])

Each call builds a container component (the same ``python -m mlflowlet.entrypoint`` command
the compilers emit) and returns its ``PipelineTask``. Output keys with ``.`` are exposed with
``-`` (``model.txt`` → ``outputs['model-txt']``) as well as kfp's own ``_`` form.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from .compilers._naming import check_image, dns1123, kfp_name

__all__ = ["DEFAULT_IMAGE", "mlrun_op", "run_op"]

DEFAULT_IMAGE = "python:3.11-slim"
_CHANNEL_TYPES = {
    "String": str,
    "Integer": int,
    "Float": float,
    "Double": float,
    "Boolean": bool,
    "List": list,
    "Dict": dict,
    "Struct": dict,
    "JsonArray": list,
    "JsonObject": dict,
}


def _dsl() -> Any:
    from .errors import MissingDependencyError

    try:
        from kfp import dsl
    except ImportError:
        raise MissingDependencyError("kfp", "kfp") from None
    return dsl


_TAGS = {str: "str", int: "int", float: "float", bool: "bool"}  # --param KEY:TYPE (_wire)


def _param_type(value: Any) -> Any:
    from kfp.dsl import pipeline_channel

    if isinstance(value, pipeline_channel.PipelineParameterChannel):
        return _CHANNEL_TYPES.get(str(value.channel_type), str)
    for typ in (bool, int, float, list, dict):
        if isinstance(value, typ):
            return typ
    return str


def mlrun_op(
    name: str = "",
    command: str = "",
    image: str = "",
    handler: str = "",
    params: dict[str, Any] | None = None,
    hyperparams: dict[str, list[Any]] | None = None,
    selector: str = "",
    strategy: str = "",
    inputs: dict[str, Any] | None = None,
    outputs: list[str] | None = None,
    project: str = "",
    labels: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    rundb: str = "",
    max_iterations: int | None = None,
) -> Any:
    """Return a kfp ``PipelineTask`` that runs one mlflowlet task in a container.

    Args:
        name: the run (and task) name.
        command: the code: ``file.py`` or ``module`` holding ``handler``, or ``file.py:handler``.
        image: the container image (default :data:`DEFAULT_IMAGE`; it must have mlflowlet).
        handler: the function to run (``module:function`` alone also works).
        params: parameters: literals or pipeline channels (typed as kfp carries them).
        hyperparams: hyper-parameter lists; every iteration runs in the one container.
        selector: ``max.accuracy`` / ``min.loss``: which iteration's outputs flow on.
        strategy: ``grid`` (default), ``list`` or ``random``.
        inputs: input key → an upstream artifact (``task.outputs['key']``) or a URL.
        outputs: artifact keys the task exposes as KFP output artifacts.
        project: the mlflowlet project.
        labels: labels of the run.
        secrets: env var → ``'secret-name:key'`` of a Kubernetes secret (a reference).
        rundb: ``MLFLOWLET_DBPATH`` of the run (e.g. a mlflowlet server URL).
        max_iterations: cap on hyper-parameter iterations.

    Returns:
        The ``PipelineTask`` (``.outputs['model-txt']`` for output ``model.txt``).

    Raises:
        CompileError: no handler, a bad image, or output/input names that collide.
        MissingDependencyError: kfp is not installed.
    """
    from .compilers._options import _secrets
    from .errors import CompileError

    dsl = _dsl()
    from kfp.dsl import pipeline_channel as pc

    target = (
        handler
        if ":" in handler
        else f"{command}:{handler}"
        if command and handler
        else command
        if ":" in command
        else ""
    )
    if not target:
        raise CompileError(
            f"mlrun_op({name!r}): give handler='function' with command="
            "'file.py', or handler='module:function'"
        )
    image = check_image(image or DEFAULT_IMAGE, f"mlrun_op({name!r})")
    label = dns1123(name or target.rsplit(":", 1)[-1])
    config: dict[str, Any] = {"metadata": {"name": name or label, "labels": dict(labels or {})}}
    if project:
        config["metadata"]["project"] = project
    spec: dict[str, Any] = {}
    if hyperparams:
        spec.update(
            hyper_params={k: list(v) for k, v in hyperparams.items()},
            selector=selector,
            strategy=strategy or "grid",
        )
        if max_iterations is not None:
            spec["max_iterations"] = max_iterations
    refs = _secrets(secrets, f"mlrun_op({name!r}) secrets")
    if refs:
        spec["secret_sources"] = [{"kind": "env", "source": ",".join(sorted(refs))}]
    if spec:
        config["spec"] = spec

    sig: list[inspect.Parameter] = []
    slots: list[tuple[str, str]] = []  # (kind, key) in signature order
    kwargs: dict[str, Any] = {}
    literal_args: list[str] = []

    def add(kind: str, key: str, annotation: Any, value: Any = None) -> None:
        ident = kfp_name(key)
        if any(p.name == ident for p in sig):
            raise CompileError(
                f"mlrun_op({name!r}): {kind} {key!r} collides with another "
                f"input/output named {ident!r}"
            )
        sig.append(
            inspect.Parameter(ident, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)
        )
        slots.append((kind, key))
        if kind != "out":
            kwargs[ident] = value

    for key, value in sorted((params or {}).items()):
        if isinstance(value, pc.PipelineChannel):
            add("param", key, _param_type(value), value)
        else:
            literal_args += ["--param", f"{key}:json={json.dumps(value)}"]  # exact, typed
    for key, value in sorted((inputs or {}).items()):
        if isinstance(value, pc.PipelineArtifactChannel):
            add("in", key, dsl.Input[dsl.Artifact], value)
        elif isinstance(value, pc.PipelineChannel):
            add("url", key, str, value)
        else:
            literal_args += ["--input", f"{key}={value}"]
    from .compilers.kfp import artifact_class

    for key in outputs or []:
        add("out", key, dsl.Output[artifact_class(key)])

    sig_types = {key: p.annotation for (kind, key), p in zip(slots, sig, strict=True)}

    def body(*values: Any) -> Any:
        args = ["--handler", target, *literal_args]
        for (kind, key), value in zip(slots, values, strict=True):
            if kind == "param":  # read back as the channel's type: a str is never parsed
                tag = _TAGS.get(sig_types[key], "json")
                args += ["--param", f"{key}:{tag}={value}"]
            elif kind == "url":
                args += ["--input", f"{key}={value}"]
            elif kind == "in":
                args += ["--input", f"{key}={value.path}/"]
            else:
                args += ["--output", f"{key}={value.path}/"]
        return dsl.ContainerSpec(
            image=image, command=["python", "-m", "mlflowlet.entrypoint"], args=args
        )

    body.__signature__ = inspect.Signature(sig)  # type: ignore[attr-defined]
    body.__annotations__ = {p.name: p.annotation for p in sig}
    body.__name__ = body.__qualname__ = label.replace("-", "_")
    body.__doc__ = None
    task = dsl.container_component(body)(**kwargs)
    task.set_display_name(name or label)
    task.set_env_variable(
        "MLFLOWLET_EXEC_CONFIG", json.dumps(config, sort_keys=True, separators=(",", ":"))
    )
    if rundb:
        task.set_env_variable("MLFLOWLET_DBPATH", rundb)
    if refs:
        from kfp import kubernetes

        by_secret: dict[str, dict[str, str]] = {}
        for env, (secret, key) in refs.items():
            by_secret.setdefault(secret, {})[key] = env
        for secret, mapping in sorted(by_secret.items()):
            kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=mapping)
    for key in outputs or []:  # expose 'model.txt' as outputs['model-txt'] too
        alias = key.replace(".", "-")
        if alias != kfp_name(key):
            task.outputs[alias] = task.outputs[kfp_name(key)]
    return task


run_op = mlrun_op
