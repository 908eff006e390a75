"""The target-neutral compile plan: what each step's container gets, worked out once.

Both compilers walk ``pipe.dag`` through its accessor API only, by way of :func:`make_plan`:
per step, which parameters are baked-in literals and which are engine inputs (pipeline
parameters, upstream results, map items, collected lists), which artifacts come in and go out,
which results downstream steps or conditions read (those become output parameters), and the
container's command line, environment and options. Only the rendering of a placeholder differs
between KFP and Argo (:class:`Slot` is rendered by each compiler).

Every container runs ``python -m mlflowlet.entrypoint --handler module:function`` with
``--param``/``--input``/``--output``/``--result`` flags. An artifact travels as a folder holding
its one file (``--output key=PATH/``, ``--input key=PATH/``), so the file keeps its name and
format suffix (``.parquet``, ``.pkl``) and loads downstream exactly as it does locally. The
static part of the run spec (run name, labels, hyper-parameters, secret sources) travels as JSON
in ``MLFLOWLET_EXEC_CONFIG``.

Hyper-parameter steps run all their iterations inside one container (the local runtime's
``_run_iterations``), so ``best_iteration``, the iteration table and the child runs are exactly
those of a local run, and the selected iteration's outputs leave the container as the step's
outputs; an engine fan-out plus a selection step would need a second code path to rebuild that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import CompileError
from ._image import step_image, warn_bare_images
from ._naming import check_image, unique_labels

ENTRYPOINT = ("python", "-m", "mlflowlet.entrypoint")
SIMPLE_TYPES = ("str", "int", "float", "bool", "list", "dict")
EXEC_CONFIG_ENV = "MLFLOWLET_EXEC_CONFIG"


@dataclass(frozen=True)
class Slot:
    """A value the engine fills in at run time.

    Attributes:
        kind: ``param`` (an input parameter), ``in_artifact`` (the local path of an input
            artifact), ``out_artifact`` (where to write an output artifact) or ``out_result``
            (where to write a result).
        name: the input/output name on the step.
    """

    kind: str
    name: str


Part = "str | Slot"


@dataclass(frozen=True)
class Source:
    """Where a step input comes from.

    Attributes:
        kind: ``param`` (pipeline parameter ``name``), ``result`` / ``artifact`` (``node``'s
            ``key``), ``item`` (the map item), ``collect`` (every item's ``key`` of mapped
            ``node``) or ``state`` (the pipeline's final state, for the exit handler).
        name: the pipeline parameter name.
        node: the producing node.
        key: the result or artifact key.
    """

    kind: str
    name: str = ""
    node: str = ""
    key: str = ""


@dataclass
class StepPlan:
    """Everything one compiled step needs (see the module docstring)."""

    name: str
    label: str
    handler: str
    image: str
    params: dict[str, Source] = field(default_factory=dict)
    param_types: dict[str, str] = field(default_factory=dict)
    literals: dict[str, Any] = field(default_factory=dict)
    artifacts_in: dict[str, Source] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    results: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)
    depends: tuple[str, ...] = ()
    node: Any = None

    def args(self, json_collect: bool = False) -> list[list[str | Slot]]:
        """Return the entrypoint arguments, each a list of parts to concatenate.

        Args:
            json_collect: for an engine that aggregates a mapped step's results as a list of
                their texts (Argo): a mapped step writes its results with ``--result-json``
                and a collecting step decodes them with ``--collected``, so types survive.
        """
        out: list[list[str | Slot]] = [["--handler"], [self.handler]]
        for key in sorted(self.literals):
            out += [["--param"], [f"{key}={json.dumps(self.literals[key], sort_keys=True)}"]]
        for key in sorted(self.params):
            if self.params[key].kind == "state":  # the entrypoint maps engine states
                out += [["--state"], [Slot("param", key)]]
            else:
                out += [["--param"], [f"{key}=", Slot("param", key)]]
            if json_collect and self.params[key].kind == "collect":
                out += [["--collected"], [key]]
        for key in sorted(self.artifacts_in):
            out += [["--input"], [f"{key}=", Slot("in_artifact", key), "/"]]
        for key in self.outputs:
            out += [["--output"], [f"{key}=", Slot("out_artifact", key), "/"]]
        mapped = json_collect and self.node is not None and self.node.map is not None
        for key in sorted(self.results):
            flag = "--result-json" if mapped else "--result"
            out += [[flag], [f"{key}=", Slot("out_result", key)]]
        return out


@dataclass
class Plan:
    """The whole pipeline's plan: parameters (name → (type, default)) and step plans in order."""

    name: str
    label: str
    description: str
    params: dict[str, tuple[str, Any, bool]]
    steps: list[StepPlan]
    exit_step: StepPlan | None
    options: Any

    def step(self, name: str) -> StepPlan:
        """Return the plan of node ``name`` (the exit step too)."""
        for st in [*self.steps, *([self.exit_step] if self.exit_step else [])]:
            if st.name == name:
                return st
        raise KeyError(name)


def value_type(hint_name: str, default: Any, where: str) -> str:
    """Return the carried type (one of :data:`SIMPLE_TYPES`) of a hint name and default.

    Raises:
        CompileError: a type no target can carry as a parameter (names ``where``).
    """
    base = hint_name.split("[", 1)[0].strip()
    base = {
        "List": "list",
        "Dict": "dict",
        "Sequence": "list",
        "Mapping": "dict",
        "tuple": "list",
        "Tuple": "list",
    }.get(base, base)
    if base in SIMPLE_TYPES:
        return base
    if base in ("", "Any", "object"):
        if isinstance(default, bool):
            return "bool"
        for typ in (int, float, list, dict):
            if isinstance(default, typ):
                return typ.__name__
        return "str"
    raise CompileError(
        f"{where} has type {hint_name!r}, which a compiled pipeline cannot carry "
        "as a parameter; use int, float, str, bool, list or dict (or pass data "
        "as an artifact)"
    )


def _result_types(dag: Any) -> dict[tuple[str, str], str]:
    """Return the carried type of every result read downstream (consumers, conditions)."""
    types: dict[tuple[str, str], str] = {}
    for node in dag.nodes:
        for param, value in node.arguments.items():
            ref = getattr(value, "ref", value)
            if getattr(ref, "kind", "") != "result":
                continue
            spec = node.spec.param(param)
            hint = spec.type if spec is not None else ""
            if hasattr(value, "ref"):  # collected: the element type
                hint = hint[hint.find("[") + 1 : -1] if "[" in hint else ""
                if not hint:  # a bare ``list``: the producer's return annotation decides
                    continue
            try:
                typ = value_type(hint, None, "")
            except CompileError:
                typ = "str"
            types.setdefault((ref.node, ref.key), typ)
        if node.condition is not None:
            _condition_types(node.condition, types)
        if node.map is not None and getattr(node.map.items, "kind", "") == "result":
            types.setdefault((node.map.items.node, node.map.items.key), "list")
    for node in dag.nodes:
        if node.spec.returns:
            try:
                typ = value_type(node.spec.returns, None, "")
            except CompileError:
                typ = "str"
            types.setdefault((node.name, "return"), typ)
    return types


def _condition_types(cond: Any, types: dict[tuple[str, str], str]) -> None:
    if cond.op in ("and", "or"):
        _condition_types(cond.left, types)
        _condition_types(cond.right, types)
        return
    for side, other in ((cond.left, cond.right), (cond.right, cond.left)):
        if getattr(side, "kind", "") == "result":
            typ = (
                "str"
                if isinstance(other, str)
                else "bool"
                if isinstance(other, bool)
                else "float"
                if isinstance(other, (int, float))
                else "str"
            )
            types.setdefault((side.node, side.key), typ)


def make_plan(pipe: Any, options: Any) -> Plan:
    """Walk ``pipe.dag`` and return the :class:`Plan` both compilers render.

    Raises:
        CompileError: a handler that is not importable by module path, a parameter type the
            targets cannot carry, a name collision after sanitising, or a bad image.
    """
    dag = pipe.dag
    params: dict[str, tuple[str, Any, bool]] = {}
    for p in dag.params:
        default = options.params.get(p.name, p.default)
        typ = value_type(p.type, default, f"pipeline parameter {p.name!r}")
        params[p.name] = (typ, default, p.required and p.name not in options.params)
    nodes = list(dag.nodes) + ([dag.exit_handler] if dag.exit_handler is not None else [])
    labels = unique_labels([n.name for n in nodes])
    if len(set(labels.values()) | {"main", "exit-handler"}) != len(labels) + 2:
        clash = sorted(set(labels.values()) & {"main", "exit-handler"})
        raise CompileError(
            f"step name {clash[0]!r} is reserved for the compiled workflow's own "
            "templates; rename the step"
        )
    rtypes = _result_types(dag)
    steps = [
        _step_plan(dag, node, labels[node.name], params, rtypes, options) for node in dag.nodes
    ]
    exit_step = None
    if dag.exit_handler is not None:
        exit_step = _step_plan(
            dag, dag.exit_handler, labels[dag.exit_handler.name], params, rtypes, options
        )
    warn_bare_images(
        (st.name, st.image, st.node.spec.image_has_mlflowlet or options.image_has_mlflowlet)
        for st in [*steps, *([exit_step] if exit_step else [])]
    )
    return Plan(
        dag.name, labels_for_pipeline(dag.name), dag.description, params, steps, exit_step, options
    )


def labels_for_pipeline(name: str) -> str:
    """Return the DNS-1123 form of the pipeline name."""
    from ._naming import dns1123

    return dns1123(name)


def _step_plan(
    dag: Any,
    node: Any,
    label: str,
    params: dict[str, tuple[str, Any, bool]],
    rtypes: dict[tuple[str, str], str],
    options: Any,
) -> StepPlan:
    spec = node.spec
    module = spec.handler.partition(":")[0]
    if module in ("__main__", "") or "<locals>" in spec.handler:
        raise CompileError(
            f"step {node.name!r}: handler {spec.handler!r} ({spec.source}) cannot be imported "
            "by module path inside a container; move the function into a module (e.g. "
            "steps.py) and import it, or build that module into the image given with --image"
        )
    where = f"step {node.name!r}"
    image = check_image(step_image(spec.image, options.image, dag.image, where=where), where)
    in_graph = not node.exit_handler  # the exit handler runs after everything, outside the DAG
    plan = StepPlan(
        node.name,
        label,
        spec.handler,
        image,
        node=node,
        outputs=tuple(spec.outputs),
        depends=tuple(dag.upstream(node.name)) if in_graph else (),
    )
    for param, value in node.arguments.items():
        _add_argument(plan, node, param, value, params, rtypes)
    if node.map is not None:
        item = node.map.item_param
        plan.params[item] = Source("item")
        ptype = node.spec.param(item)
        plan.param_types[item] = (
            value_type(
                ptype.type if ptype else "", None, f"item parameter {item!r} of step {node.name!r}"
            )
            if ptype
            else "str"
        )
    if node.exit_handler:
        plan.params["state"] = Source("state")
        plan.param_types["state"] = "str"
    for edge in dag.out_edges(node.name) if in_graph else []:
        if edge.kind in ("result", "condition", "items") or (
            edge.kind == "collect" and edge.ref == "result"
        ):
            plan.results[edge.output] = rtypes.get((node.name, edge.output), "str")
    plan.env = _env(node, options)
    plan.secrets = dict(
        sorted({**options.secrets, **options.step(node.name).get("secrets", {})}.items())
    )
    return plan


def _add_argument(
    plan: StepPlan,
    node: Any,
    param: str,
    value: Any,
    params: dict[str, tuple[str, Any, bool]],
    rtypes: dict[tuple[str, str], str],
) -> None:
    from ..pipelines.refs import Collected, OutputRef, PipelineParam

    where = f"parameter {param!r} of step {node.name!r}"
    if isinstance(value, PipelineParam):
        plan.params[param] = Source("param", name=value.name)
        plan.param_types[param] = params[value.name][0]
    elif isinstance(value, Collected):
        if value.ref.kind == "artifact":
            raise CompileError(
                f"{where} collects artifact {value.ref.key!r} of mapped step {value.node!r}; "
                "compiled pipelines collect results only: log a result (e.g. the artifact's "
                "URI or a score) in the mapped step and collect that"
            )
        plan.params[param] = Source("collect", node=value.node, key=value.ref.key)
        plan.param_types[param] = "list"
    elif isinstance(value, OutputRef) and value.kind == "artifact":
        plan.artifacts_in[param] = Source("artifact", node=value.node, key=value.key)
    elif isinstance(value, OutputRef):
        plan.params[param] = Source("result", node=value.node, key=value.key)
        plan.param_types[param] = rtypes.get((value.node, value.key), "str")
    else:
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise CompileError(
                f"{where} is a {type(value).__name__}, which a compiled "
                "pipeline cannot carry; pass a JSON value"
            ) from None
        plan.literals[param] = value


def _env(node: Any, options: Any) -> dict[str, str]:
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
    env = {EXEC_CONFIG_ENV: json.dumps(config, sort_keys=True, separators=(",", ":"))}
    if options.dbpath:
        env["MLFLOWLET_DBPATH"] = options.dbpath
    env.update(options.env)
    env.update(options.step(node.name).get("env", {}))
    return dict(sorted(env.items()))
