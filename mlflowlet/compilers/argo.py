"""Argo Workflows target: a ``Workflow`` (or ``WorkflowTemplate`` / ``CronWorkflow``) with one DAG.

Built from hera's Argo models (``hera.workflows.models``), one small builder per Argo object,
then dumped to the plain dict the Argo JSON schema describes
(https://argo-workflows.readthedocs.io/en/latest/fields/). Layout:

* ``spec.arguments.parameters``: the pipeline parameters (defaults as strings);
* template ``main``: a DAG with one task per step (``dependencies`` = every upstream step,
  ``when`` for conditions, ``withParam``/``withItems`` for maps);
* one container template per step running ``python -m mlflowlet.entrypoint``: parameters as
  ``{{inputs.parameters.x}}``, artifacts at ``/tmp/mlflowlet/inputs/<param>`` (passed by the
  artifact repository: ``from: {{tasks.X.outputs.artifacts.Y}}``), outputs written to
  ``/tmp/mlflowlet/outputs/<key>``, results to ``/tmp/mlflowlet/results/<key>`` and exposed as
  output parameters (``valueFrom.path``);
* the exit handler as ``spec.onExit``, receiving ``{{workflow.status}}`` as ``state``.

A collected result of a mapped task is Argo's aggregated output parameter (a JSON list). Argo
keeps each item as its text (a scalar is not decoded), so a mapped step writes its results as
JSON (``--result-json``) and the collecting step decodes every item (``--collected KEY``):
collected values keep their types, as in a local run.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import CompileError, MissingDependencyError
from . import Compiler
from ._naming import param_name
from ._options import CompileOptions
from ._plan import Plan, Slot, StepPlan, make_plan

ROOT = "/tmp/mlflowlet"
API_VERSION = "argoproj.io/v1alpha1"
GPU_RESOURCE = "nvidia.com/gpu"
CACHE_MAX_AGE = "720h"


def _models() -> Any:
    try:
        from hera.workflows import models
    except ImportError:
        raise MissingDependencyError("hera", "argo") from None
    return models


def text(value: Any) -> str:
    """Return a parameter value as Argo carries it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def slot_path(slot: Slot) -> str:
    """Return the in-container path of an artifact or result slot."""
    folder = {"in_artifact": "inputs", "out_artifact": "outputs", "out_result": "results"}
    return f"{ROOT}/{folder[slot.kind]}/{param_name(slot.name)}"


def render(part: str | Slot, exit_step: bool = False) -> str:
    """Render one argument part (a literal or a slot) for a container template."""
    if isinstance(part, str):
        return part
    if part.kind == "param":
        if exit_step and part.name == "state":
            return "{{workflow.status}}"
        return f"{{{{inputs.parameters.{part.name}}}}}"
    return slot_path(part)


class ArgoCompiler(Compiler):
    """Compiles a pipeline to an Argo ``Workflow`` dict (see the module docstring)."""

    target = "argo"

    def compile_docs(self, pipe: Any, options: CompileOptions) -> list[dict[str, Any]]:
        """Return the one Argo document."""
        plan = make_plan(pipe, options)
        return [build_document(plan)]


# --- builders, one per Argo object ----------------------------------------------------------
def build_document(plan: Plan) -> dict[str, Any]:
    """Build the ``Workflow`` / ``WorkflowTemplate`` / ``CronWorkflow`` as a plain dict."""
    m = _models()
    opts = plan.options
    spec = build_workflow_spec(plan)
    if opts.schedule:
        meta = build_metadata(plan, name=plan.label)
        cron = m.CronWorkflowSpec(schedules=[opts.schedule], workflow_spec=spec)
        doc = m.CronWorkflow(api_version=API_VERSION, kind="CronWorkflow", metadata=meta, spec=cron)
    elif opts.kind == "WorkflowTemplate":
        doc = m.WorkflowTemplate(
            api_version=API_VERSION,
            kind="WorkflowTemplate",
            metadata=build_metadata(plan, name=plan.label),
            spec=spec,
        )
    else:
        doc = m.Workflow(
            api_version=API_VERSION,
            kind="Workflow",
            metadata=build_metadata(plan, generate_name=f"{plan.label}-"),
            spec=spec,
        )
    out = doc.model_dump(by_alias=True, exclude_none=True, mode="json")
    if opts.argo_version.startswith("3"):
        _argo3_cache(out)
    return out


def build_metadata(plan: Plan, name: str = "", generate_name: str = "") -> Any:
    """``ObjectMeta``: name or generateName, namespace, labels and annotations."""
    m = _models()
    opts = plan.options
    labels = {"mlflowlet/pipeline": plan.label, **opts.labels}
    annotations = dict(opts.annotations)
    if plan.description:
        annotations.setdefault("workflows.argoproj.io/description", plan.description)
    return m.ObjectMeta(
        name=name or None,
        generate_name=generate_name or None,
        namespace=opts.namespace or None,
        labels=dict(sorted(labels.items())),
        annotations=dict(sorted(annotations.items())) or None,
    )


def build_workflow_spec(plan: Plan) -> Any:
    """``WorkflowSpec``: entrypoint ``main``, arguments, templates, onExit and run limits."""
    m = _models()
    opts = plan.options
    templates = [build_dag_template(plan)]
    templates += [build_container_template(plan, st) for st in plan.steps]
    if plan.exit_step is not None:
        templates.append(build_container_template(plan, plan.exit_step, exit_step=True))
    params = [build_param_decl(name, typ_default) for name, typ_default in plan.params.items()]
    return m.WorkflowSpec(
        entrypoint="main",
        templates=templates,
        arguments=m.Arguments(parameters=params) if params else None,
        on_exit=plan.exit_step.label if plan.exit_step is not None else None,
        parallelism=opts.parallelism,
        active_deadline_seconds=opts.active_deadline_seconds,
        ttl_strategy=(
            m.TTLStrategy(seconds_after_completion=opts.ttl_seconds) if opts.ttl_seconds else None
        ),
        pod_gc=m.PodGC(strategy=opts.pod_gc) if opts.pod_gc else None,
        service_account_name=opts.service_account or None,
    )


def build_param_decl(name: str, typ_default: tuple[str, Any, bool]) -> Any:
    """Build a workflow parameter: its default as text (no value when required)."""
    m = _models()
    _typ, default, required = typ_default
    return m.Parameter(name=name, value=None if required else text(default))


def build_dag_template(plan: Plan) -> Any:
    """Build the ``main`` DAG template: one task per step."""
    m = _models()
    labels = {st.name: st.label for st in plan.steps}
    tasks = [build_task(st, labels) for st in plan.steps]
    return m.Template(name="main", dag=m.DAGTemplate(tasks=tasks))


def _ref_value(source: Any, labels: dict[str, str]) -> str:
    if source.kind == "param":
        return f"{{{{workflow.parameters.{source.name}}}}}"
    if source.kind in ("result", "collect"):
        return _param_ref(labels[source.node], source.key)
    if source.kind == "item":
        return "{{item}}"
    raise CompileError(f"cannot pass a {source.kind} input to an Argo task")


def _artifact_ref(task: str, key: str) -> str:
    return f"{{{{tasks.{task}.outputs.artifacts.{param_name(key)}}}}}"


def _param_ref(task: str, key: str) -> str:
    return f"{{{{tasks.{task}.outputs.parameters.{param_name(key)}}}}}"


def build_task(st: StepPlan, labels: dict[str, str]) -> Any:
    """Build a ``DAGTask``: arguments, dependencies, condition and fan-out of one step."""
    m = _models()
    node = st.node
    params = [
        m.Parameter(name=k, value=_ref_value(src, labels)) for k, src in sorted(st.params.items())
    ]
    artifacts = [
        m.Artifact(name=param_name(k), from_=_artifact_ref(labels[src.node], src.key))
        for k, src in sorted(st.artifacts_in.items())
    ]
    args = m.Arguments(parameters=params or None, artifacts=artifacts or None)
    with_param = with_items = None
    if node.map is not None:
        items = node.map.items
        if isinstance(items, (list, tuple)):
            with_items = [m.Item(item) for item in items]
        else:
            with_param = _operand(items, labels)
    deps = sorted(labels[d] for d in st.depends)
    return m.DAGTask(
        name=st.label,
        template=st.label,
        arguments=args if (params or artifacts) else None,
        dependencies=deps or None,
        when=build_when(node.condition, labels) if node.condition is not None else None,
        with_param=with_param,
        with_items=with_items,
    )


def _operand(value: Any, labels: dict[str, str]) -> str:
    from ..pipelines.refs import OutputRef, PipelineParam

    if isinstance(value, PipelineParam):
        return f"{{{{workflow.parameters.{value.name}}}}}"
    if isinstance(value, OutputRef):
        return _param_ref(labels[value.node], value.key)
    raise CompileError(f"cannot use {value!r} as an Argo operand")


def build_when(cond: Any, labels: dict[str, str]) -> str:
    """Build a ``when`` expression (govaluate): strings quoted, and/or as && / ||."""
    from ..pipelines.refs import Operand

    if cond.op in ("and", "or"):
        joiner = " && " if cond.op == "and" else " || "
        return f"({build_when(cond.left, labels)}{joiner}{build_when(cond.right, labels)})"
    literal = cond.right if not isinstance(cond.right, Operand) else cond.left
    quote = isinstance(literal, str)

    def side(value: Any) -> str:
        if isinstance(value, Operand):
            ref = _operand(value, labels)
            return f"'{ref}'" if quote else ref
        if isinstance(value, str):
            return "'" + value.replace("'", "\\'") + "'"
        return json.dumps(value)

    return f"{side(cond.left)} {cond.op} {side(cond.right)}"


def build_container_template(plan: Plan, st: StepPlan, exit_step: bool = False) -> Any:
    """Build the container ``Template`` of one step: inputs, outputs, container, options."""
    m = _models()
    spec = st.node.spec
    opts = plan.options
    inputs = None
    in_params = [m.Parameter(name=k) for k in sorted(st.params) if not exit_step]
    in_arts = [
        m.Artifact(name=param_name(k), path=slot_path(Slot("in_artifact", k)))
        for k in sorted(st.artifacts_in)
    ]
    if in_params or in_arts:
        inputs = m.Inputs(parameters=in_params or None, artifacts=in_arts or None)
    out_params = [
        m.Parameter(
            name=param_name(k), value_from=m.ValueFrom(path=slot_path(Slot("out_result", k)))
        )
        for k in sorted(st.results)
    ]
    out_arts = [
        m.Artifact(name=param_name(k), path=slot_path(Slot("out_artifact", k))) for k in st.outputs
    ]
    outputs = None
    if out_params or out_arts:
        outputs = m.Outputs(parameters=out_params or None, artifacts=out_arts or None)
    labels = {
        **opts.labels,
        **{k: str(v) for k, v in spec.labels.items()},
        "mlflowlet/step": st.label,
    }
    node_selector = opts.step(st.name).get("node_selector") or None
    return m.Template(
        name=st.label,
        inputs=inputs,
        outputs=outputs,
        container=build_container(st, exit_step),
        metadata=m.Metadata(labels=dict(sorted(labels.items()))),
        retry_strategy=build_retry(spec) if spec.retries else None,
        active_deadline_seconds=(
            m.IntOrString(str(int(spec.timeout))) if spec.timeout is not None else None
        ),
        memoize=build_memoize(plan, st) if _cached(spec, opts) else None,
        node_selector=dict(sorted(node_selector.items())) if node_selector else None,
    )


def _cached(spec: Any, opts: CompileOptions) -> bool:
    return bool(spec.cache if spec.cache is not None else opts.cache)


def build_container(st: StepPlan, exit_step: bool = False) -> Any:
    """Build the ``Container``: image, the entrypoint command, env and resources."""
    m = _models()
    args = ["".join(render(p, exit_step) for p in parts) for parts in st.args(json_collect=True)]
    return m.Container(
        image=st.image,
        command=["python", "-m", "mlflowlet.entrypoint"],
        args=args,
        env=build_env(st) or None,
        resources=build_resources(st.node.spec.resources),
    )


def build_env(st: StepPlan) -> list[Any]:
    """``EnvVar`` s: plain values, then secret references (``secretKeyRef``, never values)."""
    m = _models()
    out = [m.EnvVar(name=k, value=v) for k, v in st.env.items()]
    for env, (secret, key) in st.secrets.items():
        out.append(
            m.EnvVar(
                name=env,
                value_from=m.EnvVarSource(secret_key_ref=m.SecretKeySelector(name=secret, key=key)),
            )
        )
    return out


def build_resources(resources: Any) -> Any:
    """``ResourceRequirements``: cpu/memory requests, GPUs as an ``nvidia.com/gpu`` limit."""
    if not resources:
        return None
    m = _models()
    requests = {k: m.Quantity(str(resources[k])) for k in ("cpu", "memory") if k in resources}
    limits = {GPU_RESOURCE: m.Quantity(str(resources["gpu"]))} if resources.get("gpu") else {}
    return m.ResourceRequirements(requests=requests or None, limits=limits or None)


def build_retry(spec: Any) -> Any:
    """``RetryStrategy``: ``retries`` attempts, backoff from ``retry_delay`` doubling."""
    m = _models()
    backoff = None
    if spec.retry_delay:
        backoff = m.Backoff(duration=f"{int(spec.retry_delay)}s", factor=m.IntOrString("2"))
    return m.RetryStrategy(
        limit=m.IntOrString(str(spec.retries)), retry_policy="Always", backoff=backoff
    )


def build_memoize(plan: Plan, st: StepPlan) -> Any:
    """``Memoize`` keyed on the step, its image and its input parameters (a ConfigMap cache).

    Artifact inputs cannot take part in an Argo memoization key; they are named by the producer
    task instead, so a cached step reruns only when its parameters change.
    """
    m = _models()
    parts = [st.label, st.image, st.handler] + [
        f"{k}={{{{inputs.parameters.{k}}}}}" for k in sorted(st.params)
    ]
    return m.Memoize(
        key="/".join(parts),
        max_age=CACHE_MAX_AGE,
        cache=m.Cache(config_map=m.LocalObjectReference(name=f"mlflowlet-cache-{plan.label}"[:63])),
    )


def _argo3_cache(doc: dict[str, Any]) -> None:
    """Argo 3.x names the cache ConfigMap with a ``ConfigMapKeySelector`` (``key`` required)."""
    spec = doc["spec"].get("workflowSpec", doc["spec"])
    for template in spec["templates"]:
        if "memoize" in template:
            template["memoize"]["cache"]["configMap"]["key"] = "cache"
