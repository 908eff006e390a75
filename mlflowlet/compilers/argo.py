"""Argo Workflows target: a ``Workflow`` (or ``WorkflowTemplate`` / ``CronWorkflow``) with one DAG.

Built from hera's Argo models (``hera.workflows.models``), one small builder per Argo object,
then dumped to the plain dict the Argo JSON schema describes
(https://argo-workflows.readthedocs.io/en/latest/fields/). Layout:

* ``spec.arguments.parameters``: the pipeline parameters (defaults as text: strings as they
  are, anything else as JSON);
* template ``main``: a DAG (``failFast: false``: a failed step skips what depends on it while
  independent branches finish, as locally) with one task per step;
* each task's ``depends`` guards on its producers' status: ``node.after(x, on=...)`` is
  ``x.Succeeded``, ``(x.Failed || x.Errored)`` or any end (``done``); a producer whose data it
  reads must have ``Succeeded`` (a skipped or failed producer omits it, and its outputs are
  never read);
  an ``.after()`` predecessor may also have been skipped or omitted; a collected fan-out may
  be ``Skipped`` (Argo skips a fan-out over an empty list: its output's default ``[]`` flows);
* ``when`` holds the step's ``with condition(...)`` blocks in govaluate: a result operand is
  its ``KEY__if`` output, written by the producer as a literal comparing there as the value
  compares in Python (``mlflowlet._govaluate.when_literal``: every string tagged ``s:`` so none
  reads as a date, numbers exact, what cannot compare exactly refused); string parameters and
  literals tagged and quoted alike;
* ``withItems`` (each item's JSON text) / ``withParam`` (a result's ``KEY__items`` list of JSON
  texts, or a ``list[T]`` parameter) for maps;
* one container template per step running ``python -m mlflowlet.entrypoint``: parameters as
  ``{{inputs.parameters.x}}``, artifacts at ``/tmp/mlflowlet/inputs/<param>`` (passed by the
  artifact repository: ``from: {{tasks.X.outputs.artifacts.Y}}``), outputs written to
  ``/tmp/mlflowlet/outputs/<key>``, results to ``/tmp/mlflowlet/results/<name>`` and exposed as
  output parameters (``valueFrom.path``);
* ``memoize`` (``maxAge`` from ``cache=timedelta(...)``, else 720h) keys satisfy Argo's
  cache-key rule (``^[a-zA-Z0-9][-a-zA-Z0-9]*$``): the step's
  label, a hash of everything the container runs with, and a hash of its input parameters
  computed by an expression tag (``sprig.sha256sum``);
* the exit handler as ``spec.onExit``, receiving ``{{workflow.status}}`` as ``state`` (and
  its ``on_exit(...)`` pipeline parameters as ``{{workflow.parameters.NAME}}``; a final status
  object from ``{{workflow.status}}``, ``{{workflow.name}}`` and ``{{workflow.failures}}``);
* the pipeline's outputs (what its function returns) as ``main``'s outputs, which Argo keeps as
  the workflow's ``status.outputs``.

A collected result is Argo's aggregated output parameter (a JSON list): a mapped step writes
each result as a JSON string of its JSON (``--result KEY:item``), which Argo keeps as text
(it re-marshals items that are JSON objects, losing ``1.0`` vs ``1``), and the collecting step
decodes each item (``--param KEY:items``), so collected values keep their types.
"""

from __future__ import annotations

import json
from typing import Any

from .._final_status import ARGO_TEXT
from .._govaluate import WHEN_STR_TAG, when_literal
from .._wire import wire_json
from ..errors import CompileError, MissingDependencyError
from . import Compiler
from ._argo_depends import build_depends
from ._argo_exit import exit_name, exit_templates
from ._argo_release import cache_name, cron_name, for_release, generate_name
from ._container import pod_labels
from ._container_step import argo_command, argo_output_path, is_container
from ._map_items import item_condition, refuse_for_argo, when_of
from ._naming import param_name
from ._options import CompileOptions
from ._plan import Plan, Slot, StepPlan, cached, digest_output, make_plan, result_output
from ._types import argo_value

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


def slot_path(slot: Slot) -> str:
    """Return the in-container path of an artifact or result slot."""
    folder = {"in_artifact": "inputs", "out_artifact": "outputs", "out_result": "results"}
    return f"{ROOT}/{folder[slot.kind]}/{param_name(slot.name)}"


def render(part: str | Slot, exit_step: StepPlan | None = None) -> str:
    """Render one argument part (a literal or a slot) of a container template (or ``onExit``'s)."""
    if isinstance(part, str):
        return part
    if part.kind == "param":
        if exit_step is not None and exit_step.params[part.name].kind == "final_status":
            return ARGO_TEXT
        if exit_step is not None and part.name in ("state", "failures"):
            return f"{{{{workflow.{'status' if part.name == 'state' else 'failures'}}}}}"
        if exit_step is not None:
            return f"{{{{workflow.parameters.{exit_step.params[part.name].name}}}}}"
        return f"{{{{inputs.parameters.{part.name}}}}}"
    return slot_path(part)


class ArgoCompiler(Compiler):
    """Compiles a pipeline to an Argo ``Workflow`` dict (see the module docstring)."""

    target = "argo"

    def compile_docs(self, pipe: Any, options: CompileOptions) -> list[dict[str, Any]]:
        """Return the one Argo document."""
        from ._argo_quote import check_when_values

        refuse_for_argo(pipe.dag)
        plan = make_plan(pipe, options, "argo")
        defaults = {name: default for name, (_t, default, _r) in plan.params.items()}
        check_when_values(pipe.dag, defaults, "pipeline parameter default")
        return [build_document(plan, pipe.dag)]


# --- builders, one per Argo object ----------------------------------------------------------
def build_document(plan: Plan, dag: Any) -> dict[str, Any]:
    """Build the ``Workflow`` / ``WorkflowTemplate`` / ``CronWorkflow`` as a plain dict."""
    m = _models()
    opts = plan.options
    spec = build_workflow_spec(plan, dag)
    if opts.schedule:
        meta = build_metadata(plan, name=cron_name(plan.label))
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
            metadata=build_metadata(plan, generate_name=generate_name(plan.label)),
            spec=spec,
        )
    return for_release(doc.model_dump(by_alias=True, exclude_none=True, mode="json"), opts)


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


def build_workflow_spec(plan: Plan, dag: Any) -> Any:
    """``WorkflowSpec``: entrypoint ``main``, arguments, templates, onExit and run limits."""
    m = _models()
    opts = plan.options
    templates = build_dag_templates(plan, dag)
    templates += [build_container_template(plan, st) for st in plan.steps]
    templates += exit_templates(plan, dag)  # onExit: the exit step's, or a sub-pipeline's
    params = [build_param_decl(name, typ_default) for name, typ_default in plan.params.items()]
    return m.WorkflowSpec(
        entrypoint="main",
        templates=templates,
        arguments=m.Arguments(parameters=params) if params else None,
        on_exit=exit_name(plan),
        parallelism=opts.parallelism,
        active_deadline_seconds=opts.active_deadline_seconds,
        ttl_strategy=(
            m.TTLStrategy(seconds_after_completion=opts.ttl_seconds) if opts.ttl_seconds else None
        ),
        pod_gc=m.PodGC(strategy=opts.pod_gc) if opts.pod_gc else None,
        service_account_name=opts.service_account or None,
        artifact_repository_ref=(
            m.ArtifactRepositoryRef(
                config_map=opts.artifact_repository_ref[0], key=opts.artifact_repository_ref[1]
            )
            if opts.artifact_repository_ref
            else None
        ),
    )


def build_param_decl(name: str, typ_default: tuple[str, Any, bool]) -> Any:
    """Build a workflow parameter: its default as text (no value when required)."""
    m = _models()
    typ, default, required = typ_default
    return m.Parameter(name=name, value=None if required else argo_value(default, typ))


def build_dag_templates(plan: Plan, dag: Any) -> list[Any]:
    """Build the ``main`` DAG template and the DAG templates of mapped sub-pipelines.

    ``main`` has one task per step (or loop, see :mod:`._argo_loops`), ``failFast: false``.
    """
    from ._argo_loops import ArgoLoops

    m = _models()
    labels = {st.name: st.label for st in plan.steps}
    loops = ArgoLoops(plan, dag, labels, build_task)
    main = m.Template(
        name="main",
        dag=m.DAGTemplate(tasks=loops.main_tasks(), fail_fast=False),
        outputs=build_outputs(plan, labels),
    )
    return [main, *loops.templates]


def build_outputs(plan: Plan, labels: dict[str, str]) -> Any:
    """Build the ``main`` template's ``Outputs``: the pipeline's outputs (the workflow's).

    A result is its producer's JSON output parameter, a collected result the aggregated list of
    its items' texts, an artifact the producer's output artifact.
    """
    if not plan.outputs:
        return None
    m = _models()
    params, arts = [], []
    for key, src in plan.outputs.items():
        task = labels[src.node]
        if src.kind == "artifact":
            arts.append(m.Artifact(name=param_name(key), from_=_artifact_ref(task, src.key)))
            continue
        use = "item" if src.kind == "collect" else "json"
        ref = _param_ref(task, result_output(src.key, use))
        params.append(m.Parameter(name=param_name(key), value_from=m.ValueFrom(parameter=ref)))
    return m.Outputs(parameters=params or None, artifacts=arts or None)


def _ref_value(source: Any, labels: dict[str, str]) -> str:
    if source.kind == "param":
        return f"{{{{workflow.parameters.{source.name}}}}}"
    if source.kind == "result":
        return _param_ref(labels[source.node], result_output(source.key, "json"))
    if source.kind == "collect":
        return _param_ref(labels[source.node], result_output(source.key, "item"))
    if source.kind == "item":
        return "{{item}}"
    raise CompileError(f"cannot pass a {source.kind} input to an Argo task")


def _artifact_ref(task: str, key: str) -> str:
    return f"{{{{tasks.{task}.outputs.artifacts.{param_name(key)}}}}}"


def _param_ref(task: str, name: str) -> str:
    return f"{{{{tasks.{task}.outputs.parameters.{param_name(name)}}}}}"


def build_task(st: StepPlan, labels: dict[str, str], plan: Plan, dag: Any) -> Any:
    """Build a ``DAGTask``: arguments, depends, condition and fan-out of one step."""
    m = _models()
    node = st.node
    params = [
        m.Parameter(name=k, value=_ref_value(src, labels)) for k, src in sorted(st.params.items())
    ]
    params += [
        m.Parameter(
            name=digest_output(k), value=_param_ref(labels[src.node], digest_output(src.key))
        )
        for k, src in sorted(st.digest_inputs.items())
    ]
    artifacts = [
        m.Artifact(name=param_name(k), from_=_artifact_ref(labels[src.node], src.key))
        for k, src in sorted(st.artifacts_in.items())
    ]
    args = m.Arguments(parameters=params or None, artifacts=artifacts or None)
    with_param = with_items = None
    if node.map is not None:
        items = node.map.items
        if isinstance(items, (list, tuple)):  # each item as its exact JSON text
            with_items = [m.Item(wire_json(item)) for item in items]
        else:
            with_param = _items_ref(items, labels)
    depends, extra = build_depends(node, dag, labels)
    conditions = [item_condition(b.condition, node) for b in node.blocks] + extra
    types = {name: typ for name, (typ, _d, _r) in plan.params.items()}
    when = when_of(node, " && ".join(build_when(c, labels, types) for c in conditions), labels)
    return m.DAGTask(
        name=st.label,
        template=st.label,
        arguments=args if (params or artifacts) else None,
        depends=depends or None,
        when=when or None,
        with_param=with_param,
        with_items=with_items,
    )


def _items_ref(items: Any, labels: dict[str, str]) -> str:
    from ..pipelines.refs import Collected, OutputRef

    if isinstance(items, Collected):  # every output of each item that ran (see ._map_items)
        return f"{{{{tasks.{labels[items.node]}.outputs.parameters}}}}"
    if isinstance(items, OutputRef):
        return _param_ref(labels[items.node], result_output(items.key, "items"))
    return f"{{{{workflow.parameters.{items.name}}}}}"


def build_when(cond: Any, labels: dict[str, str], types: dict[str, str]) -> str:
    """Build a ``when`` expression (govaluate, after Argo substitutes the references)."""
    from ..pipelines.refs import OutputRef, PipelineParam

    if cond.op in ("and", "or"):
        joiner = " && " if cond.op == "and" else " || "
        left, right = (build_when(c, labels, types) for c in (cond.left, cond.right))
        return f"({left}{joiner}{right})"

    def side(value: Any) -> str:
        if isinstance(value, OutputRef):  # the producer writes a literal (when_literal)
            return _param_ref(labels[value.node], result_output(value.key, "cond"))
        if isinstance(value, PipelineParam):
            ref = f"{{{{workflow.parameters.{value.name}}}}}"
            return f"'{WHEN_STR_TAG}{ref}'" if types[value.name] == "str" else ref
        return when_literal(value, booleans=isinstance(value, bool))  # checked in _types

    return f"{side(cond.left)} {cond.op} {side(cond.right)}"


def build_container_template(plan: Plan, st: StepPlan, exit_step: bool = False) -> Any:
    """Build the container ``Template`` of one step: inputs, outputs, container, options."""
    m = _models()
    spec = st.node.spec
    opts = plan.options
    inputs = None
    in_params = [m.Parameter(name=k) for k in sorted(st.params) if not exit_step]
    in_params += [m.Parameter(name=digest_output(k)) for k in sorted(st.digest_inputs)]
    in_arts = [
        m.Artifact(name=param_name(k), path=slot_path(Slot("in_artifact", k)))
        for k in sorted(st.artifacts_in)
    ]
    if in_params or in_arts:
        inputs = m.Inputs(parameters=in_params or None, artifacts=in_arts or None)
    out_params = [
        m.Parameter(
            name=param_name(name),
            value_from=m.ValueFrom(
                path=_result_path(st, name),
                default="[]" if use == "item" else None,  # a fan-out over no items
            ),
        )
        for _key, use, name in st.result_outputs()
    ]
    out_params += [
        m.Parameter(
            name=param_name(name), value_from=m.ValueFrom(path=slot_path(Slot("out_result", name)))
        )
        for _key, name in st.digest_outputs()
    ]
    out_arts = [
        m.Artifact(name=param_name(k), path=slot_path(Slot("out_artifact", k))) for k in st.outputs
    ]
    outputs = None
    if out_params or out_arts:
        outputs = m.Outputs(parameters=out_params or None, artifacts=out_arts or None)
    labels = {**pod_labels(st.node, opts), "mlflowlet/step": st.label}
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
        memoize=build_memoize(plan, st) if cached(spec, opts) else None,
        node_selector=dict(sorted(node_selector.items())) if node_selector else None,
    )


def _result_path(st: StepPlan, name: str) -> str:
    if is_container(st):  # a plain container writes its outputs in /tmp (see _container_step)
        return argo_output_path(name)
    return slot_path(Slot("out_result", name))


def build_container(st: StepPlan, exit_step: bool = False) -> Any:
    """Build the ``Container``: image, the entrypoint command (or a container step's), env."""
    m = _models()
    exit_plan = st if exit_step else None
    command = ["python", "-m", "mlflowlet.entrypoint"]
    args = ["".join(render(p, exit_plan) for p in parts) for parts in st.args("argo")]
    if is_container(st):
        command, args = argo_command(st)
    return m.Container(
        image=st.image,
        command=command,
        args=args or None,
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
    """``Memoize`` keyed on what the container runs with and its input parameters.

    Argo's cache key must match ``^[a-zA-Z0-9][-a-zA-Z0-9]*$`` after substitution
    (``workflow/controller/cache/cache.go``), so the key is the step's label, a hash of its
    image, command line and environment (the run spec: hyper-parameters, fan-out settings) and
    an expression tag hashing its input parameters' values. Artifact inputs cannot take part:
    their content is not known to the controller.
    """
    import hashlib

    m = _models()
    container = build_container(st).model_dump(by_alias=True, exclude_none=True, mode="json")
    static = hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]
    key = f"{st.label}-{static}"
    names = [param_name(k) for k in sorted(st.params)]
    names += [digest_output(k) for k in sorted(st.digest_inputs)]  # the input artifacts' bytes
    if names:
        values = ", ".join(f"inputs.parameters.{n}" for n in names)
        key += f"-{{{{=sprig.sha256sum(toJson([{values}]))}}}}"
    return m.Memoize(
        key=key,
        max_age=go_duration(st.node.spec.cache_max_age)
        if st.node.spec.cache_max_age
        else CACHE_MAX_AGE,
        cache=m.Cache(config_map=m.LocalObjectReference(name=cache_name(plan.label))),
    )


def go_duration(seconds: float) -> str:
    """Return seconds as a Go duration (``10s``, ``1.5s``), as ``memoize.maxAge`` reads it."""
    whole = int(seconds)
    return f"{whole}s" if whole == seconds else f"{seconds!r}s"
