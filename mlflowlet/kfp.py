"""Run mlflowlet tasks from a plain ``@dsl.pipeline``: :func:`mlrun_op` (alias :func:`run_op`).

The seed's pattern, as it was written (``mlflowlet`` for ``mlrun``), with a claim mounted where
the scripts live (``mount_pvc`` stands for the seed's vendor-specific ``mount_v3io``)::

    from kfp import dsl
    from mlflowlet import mlrun_op
    from mlflowlet.platforms import mount_pvc

    def mlrun_train(p1, p2):
        return mlrun_op('training', command=this_path + '/training.py',
                        params={'p1': p1, 'p2': p2},
                        outputs={'model.txt': '', 'dataset.csv': ''},
                        out_path=artifacts_path, rundb=db_path)

    def mlrun_validate(modelfile):
        return mlrun_op('validation', command=this_path + '/validation.py',
                        inputs={'model.txt': modelfile}, out_path=artifacts_path, rundb=db_path)

    @dsl.pipeline(name='My MLRUN pipeline', description='Shows how to use mlrun.')
    def mlrun_pipeline(p1: int = 5, p2: str = 'text'):   # KFP v2 needs the type hints
        train = mlrun_train(p1, p2).apply(mount_pvc('code-claim', 'pipeline', this_path))
        mlrun_validate(train.outputs['model-txt']).apply(mount_pvc('code-claim', 'pipeline',
                                                                   this_path))

Each call builds a container component running ``python -m mlflowlet.entrypoint``: a
``command=`` script with no handler runs as a whole (its ``get_or_create_ctx()`` is the run), a
``handler=`` runs that function. Output keys with ``.`` are exposed with ``-``
(``model.txt`` → ``outputs['model-txt']``) as well as kfp's own ``_`` form. The returned task has
``.apply(fn)`` (``fn(task)``; KFP v2 tasks have none of their own).
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from .build import RUNTIME_IMAGE as DEFAULT_IMAGE  # the official runtime image
from .compilers._naming import check_image, dns1123, kfp_name

__all__ = ["DEFAULT_IMAGE", "mlrun_op", "run_op"]

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


def _param_type(value: Any) -> Any:
    from kfp.dsl import pipeline_channel

    if isinstance(value, pipeline_channel.PipelineParameterChannel):
        return _CHANNEL_TYPES.get(str(value.channel_type), str)
    for typ in (bool, int, float, list, dict):
        if isinstance(value, typ):
            return typ
    return str


def _code(where: str, command: str, handler: str) -> list[str]:
    """Return the entrypoint arguments naming the code: ``--handler H`` or ``--script FILE``."""
    from .errors import CompileError

    if handler:
        return ["--handler", handler if ":" in handler or not command else f"{command}:{handler}"]
    if ":" in command:
        return ["--handler", command]
    if command.endswith((".py", ".ipynb")):
        return ["--script", command]
    raise CompileError(
        f"{where}: give command='path/script.py' (a script calling get_or_create_ctx, run as "
        "a whole), handler='function' with command='file.py', or handler='module:function'"
    )


def _image(where: str, image: str, has_mlflowlet: bool) -> str:
    from .compilers._image import default_image, warn_bare_images

    image = check_image(image or default_image() or DEFAULT_IMAGE, where)
    warn_bare_images([(where, image, has_mlflowlet)], stacklevel=3)
    return image


def _secret_sources(secrets: Any, where: str) -> tuple[dict[str, tuple[str, str]], list[dict]]:
    """Split ``secrets``: a dict of Kubernetes references, or the seed's list of sources."""
    from .compilers._options import _secrets
    from .errors import CompileError

    if not secrets or isinstance(secrets, dict):
        return _secrets(secrets, f"{where} secrets"), []
    sources = []
    for item in secrets:
        kind, _, source = item.partition("=") if isinstance(item, str) else ("", "", "")
        if isinstance(item, dict):
            kind, source = str(item.get("kind", "")), str(item.get("source", ""))
        if kind not in ("file", "env") or not source:
            raise CompileError(
                f"{where} secrets: {item!r} is not 'file=<path in the container>' or "
                "'env=VAR1,VAR2' (values never go into a compiled pipeline; map Kubernetes "
                "secrets with a dict: {'ENV': 'secret-name:key'})"
            )
        sources.append({"kind": kind, "source": source})
    return {}, sources


def _config(
    name: str, label: str, project: str, labels: Any, spec: dict[str, Any]
) -> dict[str, Any]:
    config: dict[str, Any] = {"metadata": {"name": name or label, "labels": dict(labels or {})}}
    if project:
        config["metadata"]["project"] = project
    if spec:
        config["spec"] = spec
    return config


def _iteration_spec(
    hyperparams: Any, param_file: str, selector: str, strategy: str, max_iterations: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if hyperparams:
        spec["hyper_params"] = {k: list(v) for k, v in hyperparams.items()}
    if param_file:
        spec["param_file"] = param_file
    if spec:
        spec.update(selector=selector, strategy=strategy or ("grid" if hyperparams else "list"))
        if max_iterations is not None:
            spec["max_iterations"] = max_iterations
    return spec


def _outputs(outputs: Any) -> tuple[list[str], list[str]]:
    """Return ``(keys, --output args)``: the seed's dict values are copy targets (``''``: none)."""
    if isinstance(outputs, dict):
        keys = list(outputs)
        copies = [a for k, path in outputs.items() if path for a in ("--output", f"{k}={path}")]
        return keys, copies
    return list(outputs or []), []


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
    outputs: dict[str, str] | list[str] | None = None,
    project: str = "",
    labels: dict[str, str] | None = None,
    secrets: dict[str, str] | list[str] | None = None,
    rundb: str = "",
    max_iterations: int | None = None,
    *,
    out_path: Any = "",
    artifact_path: Any = "",
    in_path: str = "",
    param_file: str = "",
    image_has_mlflowlet: bool = False,
) -> Any:
    """Return a kfp ``PipelineTask`` that runs one mlflowlet task in a container.

    Args:
        name: the run (and task) name.
        command: a script (``path/training.py`` or a notebook) run as a whole, its
            ``get_or_create_ctx()`` being the run; or ``file.py`` / ``module`` holding
            ``handler``; or ``file.py:handler``.
        image: the container image (default ``MLFLOWLET_IMAGE``, else the official runtime image
            :data:`DEFAULT_IMAGE`; it must have mlflowlet).
        handler: the function to run (``module:function`` alone also works).
        params: parameters: literals or pipeline channels (typed as kfp carries them).
        hyperparams: hyper-parameter lists; every iteration runs in the one container.
        selector: ``max.accuracy`` / ``min.loss``: which iteration's outputs flow on.
        strategy: ``grid`` (default), ``list`` or ``random``.
        inputs: input key → an upstream artifact (``task.outputs['key']``), a URL, or ``''``
            (``in_path/key``).
        outputs: artifact keys exposed as KFP output artifacts: a list, or the seed's dict of
            key → target path (``''``: none; else the artifact is also copied there).
        project: the mlflowlet project.
        labels: labels of the run.
        secrets: env var → ``'secret-name:key'`` of a Kubernetes secret (a reference), or the
            seed's list of sources (``['file=/etc/secrets/env.txt', 'env=TOKEN']``).
        rundb: ``MLFLOWLET_DBPATH`` of the run (a mlflowlet server URL, or a path on a volume).
        max_iterations: cap on hyper-parameter iterations.
        out_path: where the run's artifacts are written (a path, URL or pipeline channel).
        artifact_path: the same as ``out_path``.
        in_path: the prefix of inputs given as ``''`` or a relative path.
        param_file: a CSV/JSON file (in the container) with one row of params per iteration.
        image_has_mlflowlet: ``image`` is a bare base image name that does have mlflowlet.

    Returns:
        The ``PipelineTask`` (``.outputs['model-txt']`` for output ``model.txt``; ``.apply``).

    Raises:
        CompileError: no code to run, a bad image or secret, or names that collide.
        MissingDependencyError: kfp is not installed.
    """
    from .errors import CompileError

    dsl = _dsl()
    where = f"mlrun_op({name!r})"
    code = _code(where, command, handler)
    image = _image(where, image, image_has_mlflowlet)
    refs, sources = _secret_sources(secrets, where)
    spec = _iteration_spec(hyperparams, param_file, selector, strategy, max_iterations)
    if sources:
        spec["secret_sources"] = sources
    elif refs:
        spec["secret_sources"] = [{"kind": "env", "source": ",".join(sorted(refs))}]
    label = dns1123(name or code[1].rsplit(":", 1)[-1].rsplit("/", 1)[-1].split(".", 1)[0])
    config = _config(name, label, project, labels, spec)
    if out_path and artifact_path and out_path is not artifact_path:
        raise CompileError(f"{where}: give out_path or artifact_path (the same thing), not both")
    keys, copies = _outputs(outputs)
    component = _Component(dsl, where)
    component.literal += [*code, *copies]
    component.add_path("--artifact-path", "artifact_path", out_path or artifact_path)
    component.add_values("--param", params)
    component.add_inputs(inputs, in_path)
    for key in keys:
        component.add("out", key, dsl.Output[_artifact_class(dsl, key)])
    task = component.task(image, label)
    task.set_display_name(name or label)
    task.set_env_variable(
        "MLFLOWLET_EXEC_CONFIG", json.dumps(config, sort_keys=True, separators=(",", ":"))
    )
    if rundb:
        task.set_env_variable("MLFLOWLET_DBPATH", rundb)
    _use_secret_refs(task, refs)
    for key in keys:  # expose 'model.txt' as outputs['model-txt'] too
        alias = key.replace(".", "-")
        if alias != kfp_name(key):
            task.outputs[alias] = task.outputs[kfp_name(key)]
    task.apply = _applier(task)  # type: ignore[attr-defined]
    return task


def _applier(task: Any) -> Any:
    def apply(fn: Any) -> Any:
        """Apply ``fn(task)`` (a mount helper of :mod:`mlflowlet.platforms`); return the task."""
        result = fn(task)
        return task if result is None else result

    return apply


def _use_secret_refs(task: Any, refs: dict[str, tuple[str, str]]) -> None:
    if not refs:
        return
    from kfp import kubernetes

    by_secret: dict[str, dict[str, str]] = {}
    for env, (secret, key) in refs.items():
        by_secret.setdefault(secret, {})[key] = env
    for secret, mapping in sorted(by_secret.items()):
        kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=mapping)


class _Component:
    """The container component of one :func:`mlrun_op` call, input by input."""

    def __init__(self, dsl: Any, where: str) -> None:
        self.dsl, self.where = dsl, where
        self.sig: list[inspect.Parameter] = []
        self.slots: list[tuple[str, str]] = []  # (flag or "out", key) in signature order
        self.kwargs: dict[str, Any] = {}
        self.literal: list[str] = []

    def add(self, kind: str, key: str, annotation: Any, value: Any = None) -> None:
        """Add a component input (or output, ``kind='out'``) named after ``key``."""
        from .errors import CompileError

        ident = kfp_name(key)
        if any(p.name == ident for p in self.sig):
            raise CompileError(
                f"{self.where}: {kind} {key!r} collides with another input/output named {ident!r}"
            )
        self.sig.append(
            inspect.Parameter(ident, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)
        )
        self.slots.append((kind, key))
        if kind != "out":
            self.kwargs[ident] = value

    def add_path(self, flag: str, key: str, value: Any) -> None:
        """Add a string option: a literal argument, or a pipeline channel input."""
        from kfp.dsl import pipeline_channel as pc

        if isinstance(value, pc.PipelineChannel):
            self.add(flag, key, str, value)
        elif value:
            self.literal += [flag, str(value)]

    def add_values(self, flag: str, values: dict[str, Any] | None) -> None:
        """Add params: channels become typed inputs, literals JSON arguments."""
        from kfp.dsl import pipeline_channel as pc

        for key, value in sorted((values or {}).items()):
            if isinstance(value, pc.PipelineChannel):
                self.add(flag, key, _param_type(value), value)
            else:
                self.literal += [flag, f"{key}={json.dumps(value, sort_keys=True)}"]

    def add_inputs(self, inputs: dict[str, Any] | None, in_path: str) -> None:
        """Add inputs: upstream artifacts, channels carrying URLs, or literal URLs/paths."""
        import posixpath

        from kfp.dsl import pipeline_channel as pc

        for key, value in sorted((inputs or {}).items()):
            if isinstance(value, pc.PipelineArtifactChannel):
                self.add("in", key, self.dsl.Input[self.dsl.Artifact], value)
            elif isinstance(value, pc.PipelineChannel):
                self.add("--input", key, str, value)
            else:
                url = str(value or key)
                if in_path and "://" not in url and not url.startswith("/"):
                    url = posixpath.join(in_path, url)
                self.literal += ["--input", f"{key}={url}"]

    def task(self, image: str, label: str) -> Any:
        """Build the container component and return its task."""
        slots, literal, dsl = self.slots, self.literal, self.dsl

        def body(*values: Any) -> Any:
            args = list(literal)
            for (kind, key), value in zip(slots, values, strict=True):
                if kind == "in":
                    args += ["--input", f"{key}={value.path}/"]
                elif kind == "out":
                    args += ["--output", f"{key}={value.path}/"]
                elif kind == "--artifact-path":
                    args += [kind, f"{value}"]
                else:
                    args += [kind, f"{key}={value}"]
            return dsl.ContainerSpec(
                image=image, command=["python", "-m", "mlflowlet.entrypoint"], args=args
            )

        body.__signature__ = inspect.Signature(self.sig)  # type: ignore[attr-defined]
        body.__annotations__ = {p.name: p.annotation for p in self.sig}
        body.__name__ = body.__qualname__ = label.replace("-", "_")
        body.__doc__ = None
        return dsl.container_component(body)(**self.kwargs)


run_op = mlrun_op


# MLRun's mlrun_op names outputs only; their KFP type follows the name, as MLRun's did
_NAMED_KINDS = (
    ("model", "Model"),
    ("dataset", "Dataset"),
    ("data", "Dataset"),
    ("html", "HTML"),
    ("report", "HTML"),
    ("chart", "HTML"),
    ("plot", "HTML"),
    ("markdown", "Markdown"),
    ("md", "Markdown"),
    ("metrics", "Metrics"),
)


def _artifact_class(dsl: Any, key: str) -> Any:
    """Return the ``kfp.dsl`` artifact class of an ``mlrun_op`` output named ``key``."""
    low = key.lower()
    return next((getattr(dsl, cls) for word, cls in _NAMED_KINDS if word in low), dsl.Artifact)
