"""The target-neutral compile plan: what each step's container gets, worked out once.

Both compilers walk ``pipe.dag`` through its accessor API only, by way of :func:`make_plan`:
per step, which parameters are baked-in literals and which are engine inputs (pipeline
parameters, upstream results, map items, collected lists), which artifacts come in and go out,
which results downstream steps or conditions read (those become output parameters), and the
container's command line, environment and options. Only the rendering of a placeholder differs
between KFP and Argo (:class:`Slot` is rendered by each compiler).

Every container runs ``python -m mlflowlet.entrypoint --handler module:function`` (plus
``--handler-pickle`` for a handler defined in ``__main__`` or a notebook: ``._handlers``) with
``--param``/``--input``/``--output``/``--result`` flags; parameters are typed
(``--param KEY:TYPE=...``) and results written in the form their readers need
(``--result KEY:FORM=...``), so values keep their types (see :mod:`._types` and
:mod:`mlflowlet._wire`). A result read downstream is one output parameter per use: ``KEY`` (its
JSON, or an item of a collected fan-out), ``KEY__items`` (a list a map fans out over) and
``KEY__if`` (a condition operand: KFP's typed parameter, Argo's ``when`` literal). An artifact
travels as a folder holding
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

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .._wire import wire_json
from ..errors import CompileError
from ._container import check_resources, container_env
from ._handlers import check_total, handler_payload
from ._image import step_image, warn_bare_images
from ._map_items import item_fields
from ._naming import check_image, param_name, unique_labels
from ._tracking import TOKEN_ENV
from ._types import item_type, plan_params, result_uses

ENTRYPOINT = ("python", "-m", "mlflowlet.entrypoint")
EXEC_CONFIG_ENV = "MLFLOWLET_EXEC_CONFIG"
SUFFIXES = {"items": "__items", "cond": "__if"}


@dataclass(frozen=True)
class Slot:
    """A value the engine fills in at run time.

    Attributes:
        kind: ``param`` (an input parameter), ``in_artifact`` (the local path of an input
            artifact), ``out_artifact`` (where to write an output artifact), ``out_result``
            (where to write a result's output parameter) or ``out_metrics``.
        name: the input/output name on the step (an output parameter's name for results).
    """

    kind: str
    name: str


@dataclass(frozen=True)
class Source:
    """Where a step input comes from.

    Attributes:
        kind: ``param`` (pipeline parameter ``name``), ``result`` / ``artifact`` (``node``'s
            ``key``), ``item`` (the map item), ``collect`` (every item's ``key`` of mapped
            ``node``), ``state`` (the pipeline's final state, for the exit handler),
            ``failures`` (the engine's failed nodes, for the exit handler) or ``final_status``
            (the whole final status, see ``mlflowlet._final_status``).
        name: the pipeline parameter name.
        node: the producing node.
        key: the result or artifact key; for ``item``, the element's sub-field (``item["key"]``:
            the whole element is carried, the entrypoint's ``--item-field`` reads the key).
    """

    kind: str
    name: str = ""
    node: str = ""
    key: str = ""


def digest_output(key: str) -> str:
    """Return the output parameter name of the sha256 of artifact ``key``."""
    return f"{key}__sha256"


def cached(spec: Any, options: Any) -> bool:
    """Whether a step caches its result (its own ``cache``, else the compile option)."""
    return bool(spec.cache if spec.cache is not None else options.cache)


def result_output(key: str, use: str) -> str:
    """Return the output parameter name of result ``key`` for ``use`` (see the module doc)."""
    return key + SUFFIXES.get(use, "")


@dataclass
class StepPlan:
    """Everything one compiled step needs (see the module docstring).

    Attributes:
        params: input parameter name to its source.
        param_types: input parameter name to its carried type (``--param KEY:TYPE``).
        results: result key to ``{use: type}``; uses ``json`` (read as a value), ``item`` (a
            mapped step's result, collected), ``items`` (a map fans out over it) and ``cond``
            (a condition reads it; type ``str`` / ``float`` / ``bool``, ``''`` when any).
    """

    name: str
    label: str
    handler: str
    image: str
    params: dict[str, Source] = field(default_factory=dict)
    param_types: dict[str, str] = field(default_factory=dict)
    literals: dict[str, Any] = field(default_factory=dict)
    artifacts_in: dict[str, Source] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    results: dict[str, dict[str, str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)
    depends: tuple[str, ...] = ()
    node: Any = None
    config_sha256: str = ""
    digests: tuple[str, ...] = ()  # artifact outputs whose sha256 a cached consumer is keyed on
    digest_inputs: dict[str, Source] = field(default_factory=dict)  # param -> producer's digest
    failure_names: dict[str, str] = field(default_factory=dict)  # exit step: label -> step name
    pickled: str = ""  # the handler pickled by value (--handler-pickle), see ._handlers
    workflow: bool = False  # the step reads context.workflow (see _workflow)
    url_inputs: set[str] = field(default_factory=set)  # params carrying a URL input's text

    def result_outputs(self) -> list[tuple[str, str, str]]:
        """Return ``(result key, use, output name)`` of every result output, sorted."""
        out = [(k, use, result_output(k, use)) for k, uses in self.results.items() for use in uses]
        return sorted(out, key=lambda r: r[2])

    def digest_outputs(self) -> list[tuple[str, str]]:
        """Return ``(artifact key, output name)`` of every artifact digest output, sorted."""
        return [(key, digest_output(key)) for key in sorted(self.digests)]

    def args(self, target: str) -> list[list[str | Slot]]:
        """Return the entrypoint arguments, each a list of parts to concatenate."""
        out: list[list[str | Slot]] = [["--handler"], [self.handler]]
        if self.pickled:
            out += [["--handler-pickle"], [self.pickled]]
        for key in sorted(self.literals):
            text = wire_json(self.literals[key])  # no {{ an engine would substitute
            out += [["--param"], [f"{key}:json={text}"]]
        for key in sorted(self.params):
            src = self.params[key]
            if src.kind == "state":  # the entrypoint maps engine states
                out += [["--state"], [Slot("param", key)]]
            elif src.kind == "final_status":  # KFP's final status JSON, or Argo's fields
                out += [["--final-status"], [f"{key}=", Slot("param", key)]]
            elif src.kind == "failures":  # the engine's failed nodes, read by task name
                names = json.dumps(self.failure_names, sort_keys=True)
                out += [["--failures"], [Slot("param", key)], ["--failure-names"], [names]]
            elif key in self.url_inputs:  # a URL input: a DataItem on it, as locally
                out += [["--input-url"], [f"{key}=", Slot("param", key)]]
            else:
                out += [["--param"], [f"{key}:{self.param_types[key]}=", Slot("param", key)]]
            if src.kind == "item" and src.key:  # x=item["key"]: the element's sub-field
                flag = "--item-output" if src.node else "--item-field"  # see ._map_items
                out += [[flag], [f"{key}={src.key}"]]
        for key in sorted(self.artifacts_in):
            out += [["--input"], [f"{key}=", Slot("in_artifact", key), "/"]]
        for key in self.outputs:
            out += [["--output"], [f"{key}=", Slot("out_artifact", key), "/"]]
        for key, use, name in self.result_outputs():
            if use == "cond":  # KFP: a typed parameter; Argo: a literal (when_literal)
                typ = self.results[key]["cond"]
                use = f"if-{typ}" if target == "kfp" else "when-bool" if typ == "bool" else "when"
            form = use
            out += [["--result"], [f"{key}:{form}=", Slot("out_result", name)]]
        for key, name in self.digest_outputs():
            out += [["--output-digest"], [f"{key}=", Slot("out_result", name)]]
        if self.workflow:
            from ._workflow import workflow_args  # imports this module: a cycle at import time

            out += workflow_args(target, self.node.spec.retries)
        if self.config_sha256:
            out += [["--config-sha256"], [self.config_sha256]]
        return out


@dataclass
class Plan:
    """The whole pipeline's plan: parameters (name → (type, default, required)) and steps.

    ``outputs`` maps each pipeline output (what the pipeline function returns) to its source:
    ``result`` / ``artifact`` of a step, or ``collect`` (a mapped step's results).
    """

    name: str
    label: str
    description: str
    params: dict[str, tuple[str, Any, bool]]
    steps: list[StepPlan]
    exit_step: StepPlan | None
    options: Any
    outputs: dict[str, Source] = field(default_factory=dict)
    exit_steps: list[StepPlan] = field(default_factory=list)  # an exit sub-pipeline's


def make_plan(pipe: Any, options: Any, target: str) -> Plan:
    """Walk ``pipe.dag`` and return the :class:`Plan` both compilers render.

    Raises:
        CompileError: a handler that cannot be pickled (see ``._handlers``), a parameter type the
            target cannot carry, a condition it cannot compare, a name collision after
            sanitising, or a bad image.
    """
    dag = pipe.dag
    params = plan_params(dag, options, target)
    nodes = list(dag.nodes) + ([dag.exit_handler] if dag.exit_handler is not None else [])
    nodes += dag.exit_pipeline.nodes if dag.exit_pipeline is not None else []
    labels = unique_labels([n.name for n in nodes])
    if len(set(labels.values()) | {"main", "exit-handler"}) != len(labels) + 2:
        clash = sorted(set(labels.values()) & {"main", "exit-handler"})
        raise CompileError(
            f"step name {clash[0]!r} is reserved for the compiled workflow's own "
            "templates; rename the step"
        )
    uses = result_uses(dag, params, target)
    steps = [_step_plan(dag, node, labels[node.name], params, uses, options) for node in dag.nodes]
    if target == "argo":
        _key_on_artifacts(steps, options)
    exit_step = None
    if dag.exit_handler is not None:
        label = labels[dag.exit_handler.name]
        exit_step = _step_plan(dag, dag.exit_handler, label, params, {}, options)
        if dag.exit_handler.spec.param("failures") is not None:  # the failed steps' names
            exit_step.params["failures"] = Source("failures")
            exit_step.failure_names = {labels[n.name]: n.name for n in dag.nodes}
    check_total([st.pickled for st in [*steps, *([exit_step] if exit_step else [])]])
    warn_bare_images(
        (st.name, st.image, st.node.spec.image_has_mlflowlet or options.image_has_mlflowlet)
        for st in [*steps, *([exit_step] if exit_step else [])]
        if st.node.spec.container is None  # a container step's image need not have mlflowlet
    )
    from ._exit_plan import exit_plans  # imports this module: a cycle at import time

    return Plan(
        dag.name,
        labels_for_pipeline(dag.name),
        dag.description,
        params,
        steps,
        exit_step,
        options,
        _outputs(dag, target),
        exit_plans(dag, labels, params, options, target),
    )


def _outputs(dag: Any, target: str) -> dict[str, Source]:
    """Return the sources of the pipeline's outputs (compiled pipelines output step outputs)."""
    from ..pipelines.refs import Collected, OutputRef

    out: dict[str, Source] = {}
    for key, value in dag.outputs.items():
        if isinstance(value, Collected):
            out[key] = Source("collect", node=value.node, key=value.ref.key)
        elif isinstance(value, OutputRef):
            out[key] = Source(value.kind, node=value.node, key=value.key)
        else:
            what = "a pipeline parameter" if hasattr(value, "required") else "a literal value"
            raise CompileError(
                f"pipeline {dag.name!r}: output {key!r} is {what}; {target} pipeline outputs "
                "come from steps: return a step's output (or compute it in a step)"
            )
    return out


def _key_on_artifacts(steps: list[StepPlan], options: Any) -> None:
    """Key a cached step on its input artifacts' bytes (Argo's memoize sees parameters only).

    The producer writes each such artifact's sha256 as an output parameter, which the cached
    consumer receives as an input parameter of its memoization key, so a changed input misses
    the cache, as locally.
    """
    by_name = {st.name: st for st in steps}
    for st in steps:
        if not cached(st.node.spec, options):
            continue
        for param, src in st.artifacts_in.items():
            producer = by_name[src.node]
            producer.digests = tuple(sorted({*producer.digests, src.key}))
            st.digest_inputs[param] = src
    for st in steps:
        _check_output_names(st)


def labels_for_pipeline(name: str) -> str:
    """Return the DNS-1123 form of the pipeline name."""
    from ._naming import dns1123

    return dns1123(name)


def _step_plan(
    dag: Any,
    node: Any,
    label: str,
    params: dict[str, tuple[str, Any, bool]],
    uses: dict[str, dict[str, dict[str, str]]],
    options: Any,
) -> StepPlan:
    spec = node.spec
    where = f"step {node.name!r}"
    image = check_image(step_image(spec.image, options.image, dag.image, where=where), where)
    check_resources(node)
    in_graph = not node.exit_handler  # the exit handler runs after everything, outside the DAG
    plan = StepPlan(
        node.name,
        label,
        spec.handler,
        image,
        node=node,
        outputs=tuple(spec.outputs),
        depends=tuple(dag.upstream(node.name)) if in_graph else (),
        pickled=handler_payload(node),  # '' for a handler importable by module path
    )
    for param, value in node.arguments.items():
        _add_argument(plan, node, param, value, params)
    if node.map is not None:
        _add_item(plan, node, params)
    if node.exit_handler:
        from .._final_status import final_status_params

        if spec.param("state") is not None or spec.var_keyword:
            plan.params["state"] = Source("state")
            plan.param_types["state"] = "str"
        for key in final_status_params(spec):  # the whole final status (see _final_status)
            plan.params[key] = Source("final_status")
            plan.param_types[key] = "str"
    plan.results = {key: dict(use) for key, use in sorted(uses.get(node.name, {}).items())}
    from ._container_step import adjust_plan  # imports this module: a cycle at import time
    from ._workflow import add_workflow

    adjust_plan(dag, node, plan)  # container steps, as producers and as consumers
    add_workflow(plan, node, params)  # context.workflow's pipeline parameters
    _check_output_names(plan)
    plan.env = container_env(node, options)
    plan.config_sha256 = hashlib.sha256(plan.env[EXEC_CONFIG_ENV].encode()).hexdigest()
    token = {TOKEN_ENV: options.token_secret} if options.token_secret else {}
    plan.secrets = dict(
        sorted({**options.secrets, **options.step(node.name).get("secrets", {}), **token}.items())
    )
    return plan


def _check_output_names(plan: StepPlan) -> None:
    """Refuse two outputs of one step that are one name (and one file) once sanitised."""
    from ._naming import param_name

    names = [name for _k, _u, name in plan.result_outputs()]
    names += [name for _k, name in plan.digest_outputs()]
    clash = sorted({n for n in names if names.count(n) > 1 or n in plan.outputs})
    if clash:
        raise CompileError(
            f"step {plan.name!r}: output {clash[0]!r} is both a result's output parameter and "
            f"another result or artifact; rename the result or artifact (suffixes "
            f"{sorted(SUFFIXES.values())} are used for results read by maps and conditions, "
            "__sha256 for artifact digests)"
        )
    seen: dict[str, str] = {}
    for name in sorted({*names, *plan.outputs}):
        other = seen.setdefault(param_name(name), name)
        if other != name:  # e.g. results "a.b" and "a-b": one output, one file
            raise CompileError(
                f"step {plan.name!r}: outputs {other!r} and {name!r} are both "
                f"{param_name(name)!r} in a compiled pipeline (names keep [A-Za-z0-9_-] only); "
                "rename one"
            )


def _add_item(plan: StepPlan, node: Any, params: dict[str, tuple[str, Any, bool]]) -> None:
    from ..pipelines.refs import PipelineParam

    items, where = node.map.items, f"step {node.name!r}"
    if isinstance(items, PipelineParam) and node.map.fields:
        raise CompileError(
            f"{where} reads sub-fields {sorted(node.map.fields.values())} of the items of "
            f"pipeline parameter {items.name!r}, whose elements a compiled pipeline carries as "
            "scalars only; produce the list of dicts in a step, or pass a literal list"
        )
    if item_fields(node):  # a map over a map: each parameter reads its output of the element
        for param, key in item_fields(node).items():
            plan.params[param] = Source("item", node=items.node, key=param_name(key))
            plan.param_types[param] = "json"
        return
    if isinstance(items, PipelineParam):
        typ = item_type(params[items.name][0], where)
    elif isinstance(items, (list, tuple)) and not items:
        raise CompileError(
            f"{where} maps over an empty literal list: there is nothing to run, and KFP "
            "and Argo refuse an empty loop; drop the step or pass the items as a parameter"
        )
    else:
        typ = "json"  # one element's JSON text (literal items, or a result's KEY__items)
    if node.map.item_param:
        plan.params[node.map.item_param] = Source("item")
        plan.param_types[node.map.item_param] = typ
    for param, key in node.map.fields.items():  # the whole element; the entrypoint reads key
        plan.params[param] = Source("item", key=key)
        plan.param_types[param] = "json"


def _add_argument(
    plan: StepPlan,
    node: Any,
    param: str,
    value: Any,
    params: dict[str, tuple[str, Any, bool]],
) -> None:
    from ..pipelines.refs import Collected, OutputRef, PipelineParam

    where = f"parameter {param!r} of step {node.name!r}"
    if isinstance(value, PipelineParam):
        plan.params[param] = Source("param", name=value.name)
        plan.param_types[param] = params[value.name][0]
        spec = next((p for p in node.spec.params if p.name == param), None)
        if value.type == "DataItem" and spec is not None and spec.dataitem:
            plan.url_inputs.add(param)  # the step opens the URL: --input, as locally
    elif isinstance(value, Collected):
        if value.ref.kind == "artifact":
            raise CompileError(
                f"{where} collects artifact {value.ref.key!r} of mapped step {value.node!r}; "
                "compiled pipelines collect results only: log a result (e.g. the artifact's "
                "URI or a score) in the mapped step and collect that"
            )
        plan.params[param] = Source("collect", node=value.node, key=value.ref.key)
        plan.param_types[param] = "items"
    elif isinstance(value, OutputRef) and value.kind == "artifact":
        plan.artifacts_in[param] = Source("artifact", node=value.node, key=value.key)
    elif isinstance(value, OutputRef):
        plan.params[param] = Source("result", node=value.node, key=value.key)
        plan.param_types[param] = "json"
    else:  # a JSON value: tracing refused anything else
        plan.literals[param] = value
