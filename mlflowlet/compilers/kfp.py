"""Kubeflow Pipelines v2 target: the pipeline built with the kfp SDK and compiled by kfp itself.

Each step becomes a ``dsl.container_component`` generated from its plan (a function whose
signature declares the inputs and outputs, returning a ``dsl.ContainerSpec`` that runs
``python -m mlflowlet.entrypoint``); a ``dsl.pipeline`` function generated from the pipeline's
parameters calls them, and ``kfp.compiler.Compiler`` writes the IR
(https://www.kubeflow.org/docs/components/pipelines/user-guides/components/container-components/).

* Artifacts are typed as the step declares them (``outputs={"model": "model"}`` or a return
  annotation: ``Model``, ``Dataset``, ``Metrics``, ``HTML``, ``Markdown``; else ``Artifact``),
  never guessed from a name, so the KFP UI shows each in its viewer; the consumer's input takes
  the producer's type.
* Parameters keep their declared type (``str``, ``int``, ``float``, ``bool``, ``List[T]``);
  values KFP cannot hold exactly (dicts, bare lists, optionals, every step result) travel as
  JSON text in a ``str`` parameter (see :mod:`._types`). A condition reads a result through a
  typed ``KEY__if`` output; a map fans out over a ``KEY__items`` list of its items' JSON.
* One ``dsl.If`` group per ``with condition(...)`` block (nested blocks nest; ``&`` nests one
  group per conjunct; ``|`` cannot be expressed), maps are ``dsl.ParallelFor``, collected
  results ``dsl.Collected``, ``.after()`` edges ``task.after`` (``on="success"`` too;
  ``on="failure"|"done"`` is refused, see :mod:`._kfp_limits`); the exit handler is a
  ``dsl.ExitHandler`` around every step, given ``dsl.PipelineTaskFinalStatus``.
* An input and an output of one step may share a name: the output is renamed ``NAME__out``
  inside the component (KFP keeps both in one namespace).
* Secrets (``kubernetes.use_secret_as_env``), node selectors, pod labels and timeouts go through
  ``kfp-kubernetes``; retries use ``set_retry``, caching ``set_caching_options`` (the
  container's ``--config-sha256`` argument keys KFP's cache on the run spec in the environment).
* Every step also has a ``system.Metrics`` output artifact, :data:`METRICS_OUTPUT`: the
  entrypoint writes the run's numeric results there as one JSON object (``--metrics``) and,
  from the executor input (``{{$}}``, ``--kfp-executor-input``), as that artifact's metadata in
  the executor output file, where KFP's launcher reads the metrics the UI shows.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import operator
import os
from typing import Any

from .._wire import wire_json
from ..errors import CompileError, MissingDependencyError
from . import Compiler
from ._container_step import is_container, kfp_container_spec
from ._kfp_backend import header as backend_header
from ._kfp_groups import Group, check_topology, group_tree
from ._kfp_limits import refuse_maps_over_maps, refuse_unsupported
from ._kfp_options import apply_task_options
from ._naming import kfp_name
from ._options import CompileOptions
from ._plan import Plan, Slot, StepPlan, make_plan, result_output
from ._types import kfp_value

METRICS_OUTPUT = "mlflowlet_metrics"
EXECUTOR_INPUT = "{{$}}"  # KFP's executor input JSON (names the executor output file)
_PY = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "json": str,
    "items": list,
    "list": list,
}
_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_KINDS = {
    "artifact": "Artifact",
    "dataset": "Dataset",
    "model": "Model",
    "metrics": "Metrics",
    "html": "HTML",
    "markdown": "Markdown",
}


def _kfp() -> Any:
    try:
        import kfp  # noqa: F401
        from kfp import dsl
    except ImportError:
        raise MissingDependencyError("kfp", "kfp") from None
    return dsl


def artifact_class(kind: str) -> Any:
    """Return the ``kfp.dsl`` artifact class of a declared output kind (``model`` → ``Model``)."""
    return getattr(_kfp(), _KINDS.get(kind, "Artifact"))


class KFPCompiler(Compiler):
    """Compiles a pipeline to KFP v2 IR (see the module docstring)."""

    target = "kfp"

    def compile_docs(self, pipe: Any, options: CompileOptions) -> list[dict[str, Any]]:
        """Return the ``PipelineSpec`` document (and the Kubernetes platform spec, if any)."""
        refuse_maps_over_maps(pipe.dag)  # before the plan types their conditions
        plan = make_plan(pipe, options, "kfp")
        refuse_unsupported(plan, pipe.dag)
        check_topology(plan, pipe.dag)
        func = compile_plan(plan)
        docs = spec_documents(func)
        self._description = func.description
        self._min_backend = backend_header(pipe.dag)
        return docs

    def to_text(self, docs: list[dict[str, Any]]) -> str:
        """Return the YAML kfp's compiler writes: header comments, keys sorted, ``---`` between."""
        import yaml
        from kfp.compiler.pipeline_spec_builder import extract_comments_from_pipeline_spec

        dumper = getattr(yaml, "CDumper", yaml.Dumper)  # libyaml when present: same text
        header = extract_comments_from_pipeline_spec(docs[0], getattr(self, "_description", None))
        # kfp writes a default holding newlines into the header as it is, which breaks the
        # YAML: continue every such line as a comment too
        lines = header.split("\n")
        header = "\n".join(ln if not ln or ln.startswith("#") else f"#   {ln}" for ln in lines)
        header += getattr(self, "_min_backend", "")
        return header + yaml.dump_all(docs, Dumper=dumper, sort_keys=True)

    def as_dict(self, docs: list[dict[str, Any]]) -> dict[str, Any]:
        """Return the pipeline spec (``{"pipeline_spec", "platform_spec"}`` with a platform one)."""
        if len(docs) == 1:
            return docs[0]
        return {"pipeline_spec": docs[0], "platform_spec": docs[1]}


def compile_plan(plan: Plan) -> Any:
    """Build the kfp pipeline (a ``GraphComponent``, compiled by kfp as it is built).

    Raises:
        CompileError: kfp refuses what was built (its message, never its exception).
    """
    _kfp()
    from kfp.dsl.types import type_utils

    try:
        names = {st.name: kfp_names(st) for st in _all_steps(plan)}
        comps = {st.name: build_component(plan, st, names[st.name]) for st in _all_steps(plan)}
        with type_utils.TypeCheckManager(enable=True):  # as kfp.compiler.Compiler does
            return build_pipeline(plan, comps, names)
    except Exception as exc:  # kfp raises ValueError, TypeError, InvalidTopologyException...
        if not _raised_by_kfp(exc):
            raise
        raise CompileError(
            f"kfp cannot compile pipeline {plan.name!r}: {type(exc).__name__}: {exc}"
        ) from None


def _raised_by_kfp(exc: BaseException) -> bool:
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and f"{os.sep}kfp{os.sep}" in frames[-1].filename


def spec_documents(func: Any) -> list[dict[str, Any]]:
    """Return the ``PipelineSpec`` (and, with Kubernetes features, ``PlatformSpec``) dicts."""
    from google.protobuf import json_format

    messages = [func.pipeline_spec]
    if len(func.platform_spec.platforms) > 0:
        messages.append(func.platform_spec)
    # keys sorted, as in kfp's YAML (protobuf map order is not a contract)
    return [json.loads(json.dumps(json_format.MessageToDict(m), sort_keys=True)) for m in messages]


def _all_steps(plan: Plan) -> list[StepPlan]:
    return [*plan.steps, *([plan.exit_step] if plan.exit_step is not None else [])]


def _artifact_types(plan: Plan) -> dict[tuple[str, str], Any]:
    return {
        (st.name, key): artifact_class(st.node.spec.outputs_types.get(key, "artifact"))
        for st in plan.steps
        for key in st.outputs
    }


def _slots(st: StepPlan) -> tuple[list[Slot], list[Slot]]:
    """Return the step's input slots and output slots, in signature order."""
    inputs = [Slot("param", k) for k in sorted(st.params)]
    inputs += [Slot("in_artifact", k) for k in sorted(st.artifacts_in)]
    outputs = [Slot("out_artifact", k) for k in st.outputs]
    outputs += [Slot("out_result", name) for _k, _u, name in st.result_outputs()]
    if is_container(st):  # a plain container writes no metrics
        return inputs, outputs
    return inputs, [*outputs, Slot("out_metrics", METRICS_OUTPUT)]


def kfp_names(st: StepPlan) -> dict[Slot, str]:
    """Return the KFP name of every input and output of a step.

    Inputs and outputs share one namespace in KFP; an output whose name an input already has is
    renamed ``NAME__out`` (a Metaflow-style step reading and writing ``model``).

    Raises:
        CompileError: two names still collide (names both, and how to fix it).
    """
    inputs, outputs = _slots(st)
    names: dict[Slot, str] = {}
    taken: dict[str, Slot] = {}
    for slot in [*inputs, *outputs]:
        name = kfp_name(slot.name)
        if name in taken and slot in outputs and taken[name] in inputs:
            name = f"{name}__out"
        if name in taken:
            raise CompileError(
                f"step {st.name!r}: {taken[name].kind} {taken[name].name!r} and {slot.kind} "
                f"{slot.name!r} are both {name!r} in KFP; rename one"
            )
        taken[name], names[slot] = slot, name
    return names


# --- one component per step -----------------------------------------------------------------
def _annotation(dsl: Any, plan: Plan, st: StepPlan, slot: Slot) -> Any:
    types = _artifact_types(plan)
    if slot.kind == "param":
        if st.params[slot.name].kind in ("state", "final_status"):
            return dsl.PipelineTaskFinalStatus
        return _PY.get(st.param_types[slot.name], list)
    if slot.kind == "in_artifact":
        src = st.artifacts_in[slot.name]
        return dsl.Input[types[(src.node, src.key)]]
    if slot.kind == "out_artifact":
        return dsl.Output[types[(st.name, slot.name)]]
    if slot.kind == "out_metrics":
        return dsl.Output[dsl.Metrics]
    key, use, _name = next(r for r in st.result_outputs() if r[2] == slot.name)
    typ = "str"
    if use == "items":
        typ = "list"
    elif use == "cond":
        typ = st.results[key]["cond"] or "str"
    elif is_container(st):  # the declared type: KFP reads the file as it
        typ = st.results[key][use]
    return dsl.OutputPath(_PY[typ])


def build_component(plan: Plan, st: StepPlan, names: dict[Slot, str]) -> Any:
    """Build the ``dsl.container_component`` of one step, its interface from the plan."""
    dsl = _kfp()
    inputs, outputs = _slots(st)
    slots = [*inputs, *outputs]
    params = [
        inspect.Parameter(
            names[slot],
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=_annotation(dsl, plan, st, slot),
        )
        for slot in slots
    ]

    def body(*values: Any) -> Any:
        found = dict(zip(slots, values, strict=True))
        if is_container(st):
            return kfp_container_spec(dsl, st, found)
        parts_list: list[Any] = [
            *st.args("kfp"),
            ["--metrics"],
            [Slot("out_metrics", METRICS_OUTPUT)],
            ["--kfp-executor-input"],  # the launcher reads the metrics' metadata back
            [EXECUTOR_INPUT],
        ]
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
def _param_annotation(typ: str) -> Any:
    import typing

    if typ.startswith("list["):
        item: Any = _PY[typ[5:-1]]
        return typing.List[item]  # noqa: UP006 - kfp reads the item type from it
    return _PY[typ]


def build_pipeline(plan: Plan, comps: dict[str, Any], names: dict[str, dict[Slot, str]]) -> Any:
    """Build a ``dsl.pipeline`` with the pipeline's parameters whose body calls the steps."""
    dsl = _kfp()
    sig = []
    for name, (typ, default, required) in plan.params.items():
        if typ == "json" and not required:
            default = wire_json(default)
        elif not required:
            default = kfp_value(name, typ, default)
        sig.append(
            inspect.Parameter(
                kfp_name(name),
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=_param_annotation(typ),
                default=inspect.Parameter.empty if required else default,
            )
        )
    tree = group_tree(plan)
    returns = _output_annotation(plan)

    def body(*values: Any) -> Any:
        build = _Build(plan, comps, names, dict(zip([p.name for p in sig], values, strict=True)))
        with contextlib.ExitStack() as outer:
            if plan.exit_step is not None:
                exit_task = comps[plan.exit_step.name](**build.exit_arguments())
                apply_task_options(plan, plan.exit_step, exit_task)
                outer.enter_context(dsl.ExitHandler(exit_task, name="exit-handler"))
            build.group(tree)
        return build.pipeline_outputs(returns)

    body.__signature__ = inspect.Signature(sig, return_annotation=returns)  # type: ignore[attr-defined]
    body.__annotations__ = {p.name: p.annotation for p in sig}
    if returns is not inspect.Signature.empty:
        body.__annotations__["return"] = returns
    body.__name__ = body.__qualname__ = plan.label.replace("-", "_")
    body.__doc__ = None
    return dsl.pipeline(name=plan.label, description=plan.description or None)(body)


def _output_annotation(plan: Plan) -> Any:
    """Return the pipeline function's return annotation: one output, or a NamedTuple of them.

    Results cross as their JSON text (``str``), collected results as a list of item texts, and
    artifacts keep their producer's type; a single output ``return`` is KFP's ``Output``.
    """
    import typing

    if not plan.outputs:
        return inspect.Signature.empty
    types = _artifact_types(plan)
    anns = {}
    for key, src in plan.outputs.items():
        if src.kind == "artifact":
            anns[key] = types[(src.node, src.key)]
        else:
            anns[key] = typing.List[str] if src.kind == "collect" else str  # noqa: UP006
    if list(anns) == ["return"]:
        return anns["return"]
    return typing.NamedTuple("Outputs", [(kfp_name(k), a) for k, a in anns.items()])  # type: ignore[misc]


def _conjuncts(cond: Any) -> list[Any]:
    if cond.op == "and":
        return _conjuncts(cond.left) + _conjuncts(cond.right)
    if cond.op == "or":
        raise CompileError(
            f"condition {cond} uses |, which KFP's dsl.If cannot express; split "
            "it into separate steps or use target='argo'"
        )
    return [cond]


class _Build:
    """Creates the tasks inside the pipeline function: groups, loops, arguments, ordering."""

    def __init__(
        self, plan: Plan, comps: dict[str, Any], names: dict, channels: dict[str, Any]
    ) -> None:
        self.plan, self.comps, self.names, self.channels = plan, comps, names, channels
        self.tasks: dict[str, Any] = {}
        self.loop_items: list[Any] = []  # the items of the open sub-pipeline ParallelFors

    def output(self, node: str, name: str) -> Any:
        """Return the channel of output parameter ``name`` of step ``node``."""
        return self.tasks[node].outputs[self.names[node][Slot("out_result", name)]]

    def exit_arguments(self) -> dict[str, Any]:
        """Return the exit task's ``on_exit(...)`` pipeline parameters (KFP gives ``state``)."""
        st = self.plan.exit_step
        assert st is not None
        names = self.names[st.name]
        return {
            names[Slot("param", key)]: self.channels[kfp_name(src.name)]
            for key, src in st.params.items()
            if src.kind == "param"
        }

    def operand(self, value: Any) -> Any:
        from ..pipelines.refs import OutputRef, PipelineParam

        if isinstance(value, PipelineParam):
            return self.channels[kfp_name(value.name)]
        if isinstance(value, OutputRef):
            return self.output(value.node, result_output(value.key, "cond"))
        return value

    def group(self, group: Group) -> None:
        """Create a group's members: steps as tasks, blocks as nested ``dsl.If`` groups."""
        dsl = _kfp()
        for member in group.members:
            if not isinstance(member, Group):
                self.tasks[member.name] = self.task(member)
                continue
            if member.loop is not None:  # a mapped sub-pipeline: its steps in one ParallelFor
                items = self.items(member.loop.items)
                with dsl.ParallelFor(items, parallelism=member.loop.parallel or 0) as item:
                    self.loop_items.append(item)
                    self.group(member)
                    self.loop_items.pop()
                continue
            with contextlib.ExitStack() as stack:
                for cond in _conjuncts(member.block.condition):
                    left, right = (self.operand(s) for s in (cond.left, cond.right))
                    stack.enter_context(dsl.If(_OPS[cond.op](left, right)))
                self.group(member)

    def pipeline_outputs(self, returns: Any) -> Any:
        """Return the channels of the pipeline's outputs, as ``returns`` declares them."""
        dsl = _kfp()
        channels = {}
        for key, src in self.plan.outputs.items():
            names = self.names[src.node]
            if src.kind == "artifact":
                out = names[Slot("out_artifact", src.key)]
                channels[key] = self.tasks[src.node].outputs[out]
            elif src.kind == "collect":
                channels[key] = dsl.Collected(self.output(src.node, result_output(src.key, "item")))
            else:
                channels[key] = self.output(src.node, result_output(src.key, "json"))
        if not channels:
            return None
        if list(channels) == ["return"]:
            return channels["return"]
        return returns(**{kfp_name(k): v for k, v in channels.items()})

    def items(self, items: Any) -> Any:
        from ..pipelines.refs import OutputRef

        if isinstance(items, OutputRef):
            return self.output(items.node, result_output(items.key, "items"))
        if isinstance(items, (list, tuple)):  # each item as its exact JSON text
            return [wire_json(item) for item in items]
        return self.operand(items)

    def task(self, st: StepPlan) -> Any:
        """Call the step's component (inside its ``dsl.ParallelFor`` when mapped)."""
        dsl = _kfp()
        node, names = st.node, self.names[st.name]
        with contextlib.ExitStack() as stack:
            item = self.loop_items[-1] if self.loop_items else None
            if node.map is not None and node.map.loop is None:
                items = self.items(node.map.items)
                loop = dsl.ParallelFor(items, parallelism=node.map.parallel or 0)
                item = stack.enter_context(loop)
            kwargs: dict[str, Any] = {}
            for key, src in st.params.items():
                if src.kind == "param":
                    value = self.channels[kfp_name(src.name)]
                elif src.kind == "result":
                    value = self.output(src.node, result_output(src.key, "json"))
                elif src.kind == "collect":
                    value = dsl.Collected(self.output(src.node, result_output(src.key, "item")))
                else:
                    value = item
                kwargs[names[Slot("param", key)]] = value
            for key, src in st.artifacts_in.items():
                producer = self.tasks[src.node]
                out = self.names[src.node][Slot("out_artifact", src.key)]
                kwargs[names[Slot("in_artifact", key)]] = producer.outputs[out]
            task = self.comps[st.name](**kwargs)
            if node.after:  # ordering-only edges (data edges are implied by the arguments)
                task.after(*(self.tasks[name] for name in node.after))
            try:
                apply_task_options(self.plan, st, task)
            except ValueError as exc:  # kfp's own checks (cpu/memory formats...)
                raise CompileError(
                    f"step {st.name!r} ({node.spec.source}): KFP cannot carry its options: {exc}"
                ) from None
        return task
