"""Kubeflow Pipelines v2 target: the pipeline built with the kfp SDK and compiled by kfp itself.

Each step becomes a ``dsl.container_component`` generated from its plan (a function whose
signature declares the inputs and outputs, returning a ``dsl.ContainerSpec`` that runs
``python -m mlflowlet.entrypoint``); a ``dsl.pipeline`` function generated from the pipeline's
parameters calls them, and ``kfp.compiler.Compiler`` writes the IR
(https://www.kubeflow.org/docs/components/pipelines/user-guides/components/container-components/).

* Artifacts are typed by their output name (``model`` → ``Model``, ``data``/``dataset`` →
  ``Dataset``, ``html``/``report``/``chart``/``plot`` → ``HTML``, ``md`` → ``Markdown``, else
  ``Artifact``); the consumer's input takes the producer's type.
* Results read downstream are ``OutputPath`` parameters typed by what reads them.
* Conditions are nested ``dsl.If`` (an ``|`` of conditions cannot be compiled for KFP), maps are
  ``dsl.ParallelFor`` and collected results ``dsl.Collected``; the exit handler is a
  ``dsl.ExitHandler`` around every step, given ``dsl.PipelineTaskFinalStatus``.
* Secrets (``kubernetes.use_secret_as_env``), node selectors, pod labels and timeouts go through
  ``kfp-kubernetes``; retries use ``set_retry``, caching ``set_caching_options``.
* Every step also has a ``system.Metrics`` output artifact, :data:`METRICS_OUTPUT`: the
  entrypoint writes the run's numeric results there as one JSON object (``--metrics``), so
  they show in the KFP UI beside the step.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

from ..errors import CompileError, MissingDependencyError
from . import Compiler
from ._naming import kfp_name
from ._options import CompileOptions
from ._plan import Plan, Slot, StepPlan, make_plan

METRICS_OUTPUT = "mlflowlet_metrics"
_PY = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}
_KINDS = (
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


def _kfp() -> Any:
    try:
        import kfp  # noqa: F401
        from kfp import dsl
    except ImportError:
        raise MissingDependencyError("kfp", "kfp") from None
    return dsl


def artifact_class(key: str) -> Any:
    """Return the ``kfp.dsl`` artifact class for an output named ``key`` (see above)."""
    dsl = _kfp()
    low = key.lower()
    for word, name in _KINDS:
        if word in low:
            return getattr(dsl, name)
    return dsl.Artifact


class KFPCompiler(Compiler):
    """Compiles a pipeline to KFP v2 IR (see the module docstring)."""

    target = "kfp"

    def compile_docs(self, pipe: Any, options: CompileOptions) -> list[dict[str, Any]]:
        """Return the ``PipelineSpec`` document (and the Kubernetes platform spec, if any)."""
        func = compile_plan(make_plan(pipe, options))
        docs = spec_documents(func)
        self._description = func.description
        return docs

    def to_text(self, docs: list[dict[str, Any]]) -> str:
        """Return the YAML kfp's compiler writes: header comments, keys sorted, ``---`` between."""
        import yaml
        from kfp.compiler.pipeline_spec_builder import extract_comments_from_pipeline_spec

        dumper = getattr(yaml, "CDumper", yaml.Dumper)  # libyaml when present: same text
        header = extract_comments_from_pipeline_spec(docs[0], getattr(self, "_description", None))
        return header + yaml.dump_all(docs, Dumper=dumper, sort_keys=True)

    def as_dict(self, docs: list[dict[str, Any]]) -> dict[str, Any]:
        """Return the pipeline spec (``{"pipeline_spec", "platform_spec"}`` with a platform one)."""
        if len(docs) == 1:
            return docs[0]
        return {"pipeline_spec": docs[0], "platform_spec": docs[1]}


def compile_plan(plan: Plan) -> Any:
    """Build the kfp pipeline (a ``GraphComponent``, compiled by kfp as it is built)."""
    _kfp()
    from kfp.dsl.types import type_utils

    comps = {st.name: build_component(plan, st) for st in _all_steps(plan)}
    try:
        with type_utils.TypeCheckManager(enable=True):  # as kfp.compiler.Compiler does
            return build_pipeline(plan, comps)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CompileError(f"kfp cannot compile pipeline {plan.name!r}: {exc}") from None


def spec_documents(func: Any) -> list[dict[str, Any]]:
    """Return the ``PipelineSpec`` (and, with Kubernetes features, ``PlatformSpec``) dicts."""
    import json

    from google.protobuf import json_format

    messages = [func.pipeline_spec]
    if len(func.platform_spec.platforms) > 0:
        messages.append(func.platform_spec)
    # keys sorted, as in kfp's YAML (protobuf map order is not a contract)
    return [json.loads(json.dumps(json_format.MessageToDict(m), sort_keys=True)) for m in messages]


def _all_steps(plan: Plan) -> list[StepPlan]:
    return [*plan.steps, *([plan.exit_step] if plan.exit_step is not None else [])]


def _artifact_types(plan: Plan) -> dict[tuple[str, str], Any]:
    return {(st.name, key): artifact_class(key) for st in plan.steps for key in st.outputs}


# --- one component per step -----------------------------------------------------------------
def build_component(plan: Plan, st: StepPlan) -> Any:
    """Build the ``dsl.container_component`` of one step, its interface from the plan."""
    dsl = _kfp()
    types = _artifact_types(plan)
    params: list[inspect.Parameter] = []
    slots: list[Slot] = []
    seen: dict[str, str] = {}

    def add(slot: Slot, annotation: Any) -> None:
        name = kfp_name(slot.name)
        if name in seen:
            raise CompileError(
                f"step {st.name!r}: {seen[name]} and {slot.kind} {slot.name!r} "
                f"are both {name!r} in KFP; rename one"
            )
        seen[name] = f"{slot.kind} {slot.name!r}"
        params.append(
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)
        )
        slots.append(slot)

    for key in sorted(st.params):
        annotation = (
            dsl.PipelineTaskFinalStatus
            if st.params[key].kind == "state"
            else _PY[st.param_types.get(key, "str")]
        )
        add(Slot("param", key), annotation)
    for key in sorted(st.artifacts_in):
        src = st.artifacts_in[key]
        add(Slot("in_artifact", key), dsl.Input[types[(src.node, src.key)]])
    for key in st.outputs:
        add(Slot("out_artifact", key), dsl.Output[types[(st.name, key)]])
    for key in sorted(st.results):
        add(Slot("out_result", key), dsl.OutputPath(_PY[st.results[key]]))
    add(Slot("out_metrics", METRICS_OUTPUT), dsl.Output[dsl.Metrics])

    def body(*values: Any) -> Any:
        found = dict(zip(slots, values, strict=True))
        parts_list: list[Any] = [*st.args(), ["--metrics"], [Slot("out_metrics", METRICS_OUTPUT)]]
        args = ["".join(_render(p, found) for p in parts) for parts in parts_list]
        return dsl.ContainerSpec(
            image=st.image, command=["python", "-m", "mlflowlet.entrypoint"], args=args
        )

    body.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    body.__name__ = body.__qualname__ = st.label.replace("-", "_")
    body.__doc__ = (st.node.spec.doc or "").split("\n", 1)[0] or None
    body.__annotations__ = {p.name: p.annotation for p in params}
    return dsl.container_component(body)


def _render(part: str | Slot, found: dict[Slot, Any]) -> str:
    if isinstance(part, str):
        return part
    value = found[part]
    if part.kind in ("in_artifact", "out_artifact", "out_metrics"):
        return str(value.path)
    return str(value)


# --- the pipeline function ------------------------------------------------------------------
def build_pipeline(plan: Plan, comps: dict[str, Any]) -> Any:
    """Build a ``dsl.pipeline`` with the pipeline's parameters whose body calls the steps."""
    dsl = _kfp()
    sig = []
    for name, (typ, default, required) in plan.params.items():
        sig.append(
            inspect.Parameter(
                kfp_name(name),
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=_PY[typ],
                default=inspect.Parameter.empty if required else default,
            )
        )

    def body(*values: Any) -> None:
        channels = dict(zip([p.name for p in sig], values, strict=True))
        tasks: dict[str, Any] = {}
        with contextlib.ExitStack() as outer:
            if plan.exit_step is not None:
                exit_task = comps[plan.exit_step.name]()
                apply_task_options(plan, plan.exit_step, exit_task)
                outer.enter_context(dsl.ExitHandler(exit_task, name="exit-handler"))
            for st in plan.steps:
                tasks[st.name] = build_task(plan, st, comps[st.name], channels, tasks)

    body.__signature__ = inspect.Signature(sig)  # type: ignore[attr-defined]
    body.__annotations__ = {p.name: p.annotation for p in sig}
    body.__name__ = body.__qualname__ = plan.label.replace("-", "_")
    body.__doc__ = None
    return dsl.pipeline(name=plan.label, description=plan.description or None)(body)


def _operand(value: Any, channels: dict[str, Any], tasks: dict[str, Any]) -> Any:
    from ..pipelines.refs import OutputRef, PipelineParam

    if isinstance(value, PipelineParam):
        return channels[kfp_name(value.name)]
    if isinstance(value, OutputRef):
        return tasks[value.node].outputs[kfp_name(value.key)]
    return value


def _conjuncts(cond: Any) -> list[Any]:
    if cond is None:
        return []
    if cond.op == "and":
        return _conjuncts(cond.left) + _conjuncts(cond.right)
    if cond.op == "or":
        raise CompileError(
            f"condition {cond} uses |, which KFP's dsl.If cannot express; split "
            "it into separate steps or use target='argo'"
        )
    return [cond]


def build_task(
    plan: Plan, st: StepPlan, comp: Any, channels: dict[str, Any], tasks: dict[str, Any]
) -> Any:
    """Call the step's component inside its ``dsl.If`` / ``dsl.ParallelFor`` blocks."""
    dsl = _kfp()
    node = st.node
    with contextlib.ExitStack() as stack:
        for cond in _conjuncts(node.condition):
            left, right = (_operand(s, channels, tasks) for s in (cond.left, cond.right))
            expr = {
                "==": left == right,
                "!=": left != right,
                "<": left < right,
                "<=": left <= right,
                ">": left > right,
                ">=": left >= right,
            }[cond.op]
            stack.enter_context(dsl.If(expr))
        item = None
        if node.map is not None:
            items = _operand(node.map.items, channels, tasks)
            item = stack.enter_context(dsl.ParallelFor(items, parallelism=node.map.parallel or 0))
        kwargs: dict[str, Any] = {}
        for key, src in st.params.items():
            if src.kind == "param":
                kwargs[kfp_name(key)] = channels[kfp_name(src.name)]
            elif src.kind == "result":
                kwargs[kfp_name(key)] = tasks[src.node].outputs[kfp_name(src.key)]
            elif src.kind == "collect":
                kwargs[kfp_name(key)] = dsl.Collected(tasks[src.node].outputs[kfp_name(src.key)])
            elif src.kind == "item":
                kwargs[kfp_name(key)] = item
        for key, src in st.artifacts_in.items():
            kwargs[kfp_name(key)] = tasks[src.node].outputs[kfp_name(src.key)]
        task = comp(**kwargs)
        apply_task_options(plan, st, task)
    return task


def apply_task_options(plan: Plan, st: StepPlan, task: Any) -> None:
    """Display name, caching, retries, resources, env, secrets, selectors, labels, timeout."""
    from kfp import kubernetes

    spec, opts = st.node.spec, plan.options
    task.set_display_name(st.name)
    task.set_caching_options(bool(spec.cache if spec.cache is not None else opts.cache))
    if spec.retries:
        task.set_retry(
            num_retries=spec.retries,
            backoff_duration=f"{int(spec.retry_delay)}s" if spec.retry_delay else None,
            backoff_factor=2.0 if spec.retry_delay else None,
        )
    res = spec.resources
    if res.get("cpu"):
        task.set_cpu_request(str(res["cpu"]))
    if res.get("memory"):
        task.set_memory_request(str(res["memory"]))
    if res.get("gpu"):
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(str(res["gpu"]))
    if st.env:
        _set_env(task, st.env)
    by_secret: dict[str, dict[str, str]] = {}
    for env, (secret, key) in st.secrets.items():
        by_secret.setdefault(secret, {})[key] = env
    for secret, mapping in sorted(by_secret.items()):
        kubernetes.use_secret_as_env(
            task, secret_name=secret, secret_key_to_env=dict(sorted(mapping.items()))
        )
    for key, value in sorted((opts.step(st.name).get("node_selector") or {}).items()):
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    labels = {**opts.labels, **{k: str(v) for k, v in spec.labels.items()}}
    for key, value in sorted(labels.items()):
        kubernetes.add_pod_label(task, key, value)
    for key, value in sorted(opts.annotations.items()):
        kubernetes.add_pod_annotation(task, key, value)
    if spec.timeout is not None:
        kubernetes.set_timeout(task, int(spec.timeout))


def _set_env(task: Any, env: dict[str, str]) -> None:
    """Set the task's environment as ``task.set_env_variable`` does, one variable at a time.

    kfp's ``set_env_variable`` calls ``inspect.stack()`` (source lines of every frame, a stat
    of each file) to name itself in an error it raises only for non-container tasks; once per
    step that made a 200-step compile 1.4x the hand-written pipeline. Every step here is a
    container component, so the container spec is set directly (same result, same check).
    """
    spec = task.container_spec
    if spec is None:
        raise ValueError(
            "set_env_variable can only be used on single-step components, not pipelines used "
            "as components, or special components like importers."
        )
    spec.env = {**(spec.env or {}), **env}
