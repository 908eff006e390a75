"""An exit handler that is a sub-pipeline: ``@pipeline(on_exit=notify)`` with ``notify`` a pipeline.

Its steps run after the pipeline ended, whatever it ended in (Argo's ``onExit`` template that is
a DAG; KFP v2 refuses it, see ``compilers._kfp_limits``). Its parameters are filled in when it
runs:

* ``state``: the pipeline's final state (``completed`` or ``error``);
* ``failures``: the sorted names of the pipeline's steps that failed;
* one annotated ``PipelineTaskFinalStatus``: the whole final status (``mlflowlet._final_status``);
* any other: the argument of ``on_exit(notify, x=...)`` (a pipeline parameter or a JSON literal),
  else its default.

A step of it receives those as the parameter of the same name (``notify_op(state=state)``; the
final status as a parameter annotated ``PipelineTaskFinalStatus``), as an exit step does, so every
target hands them over the same way; conditions may test them (``with condition(state ==
"completed"):``, Argo ``when: "{{workflow.status}} == Succeeded"``). Its steps are steps of the
pipeline run (their names must differ from the pipeline's own steps'); it maps nothing, has no
exit handler of its own and returns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import PipelineError, StepDefinitionError
from ._spec import where
from ._status import FAILED, final_state
from .refs import Collected, Operand, OutputRef, PipelineParam

if TYPE_CHECKING:
    from collections.abc import Callable

    from .executor import LocalExecutor
    from .graph import Node, PipelineGraph
    from .pipeline import Pipeline

OWN = ("state", "failures")


@dataclass
class ExitPipeline:
    """The traced exit sub-pipeline of a pipeline (``dag.exit_pipeline``).

    Attributes:
        pipe: the exit ``Pipeline``.
        dag: its traced graph.
        arguments: its parameter name to the ``on_exit(...)`` argument (a pipeline parameter of
            the outer pipeline, or a JSON literal).
        site: where ``on_exit`` was given.
        kinds: its parameters the run fills in: name to ``state``, ``failures`` or
            ``final_status``.
    """

    pipe: Pipeline
    dag: PipelineGraph
    arguments: dict[str, Any]
    site: str
    kinds: dict[str, str] = field(default_factory=dict)

    @property
    def nodes(self) -> list[Node]:
        """Its steps, in trace order."""
        return list(self.dag.nodes)

    def values(self, params: dict[str, Any], filled: dict[str, Any]) -> dict[str, Any]:
        """Return its parameters' values: ``filled`` by kind, arguments, else defaults."""
        out: dict[str, Any] = {}
        for p in self.dag.params:
            if p.name in self.kinds:
                out[p.name] = filled[self.kinds[p.name]]
            elif isinstance(self.arguments.get(p.name), PipelineParam):
                out[p.name] = params[self.arguments[p.name].name]
            elif p.name in self.arguments:
                out[p.name] = self.arguments[p.name]
            else:
                out[p.name] = p.default
        return out


def _kinds(pipe: Pipeline) -> dict[str, str]:
    from .._binding import _strip_optional
    from .._final_status import PipelineTaskFinalStatus

    out = {p.name: p.name for p in pipe.params if p.name in OWN}
    for p in pipe.params:
        if _strip_optional(p.hint) is PipelineTaskFinalStatus:
            out[p.name] = "final_status"
    return out


def check_exit_pipeline(
    fn: Callable[..., object], exit_pipe: Pipeline, given: tuple[str, ...] = ()
) -> None:
    """Check an exit sub-pipeline's parameters: the final state, and arguments for the rest.

    Raises:
        StepDefinitionError: it takes neither ``state`` nor a final status, or a parameter
            without a default gets no argument.
    """
    kinds = _kinds(exit_pipe)
    where_ = f"exit sub-pipeline {exit_pipe.name!r} ({where(exit_pipe.fn)})"
    if "state" not in kinds.values() and "final_status" not in kinds.values():
        raise StepDefinitionError(
            f"{where_}: an on_exit pipeline receives the pipeline's final state: give it a "
            "parameter named 'state' (or one annotated PipelineTaskFinalStatus)"
        )
    required = [p.name for p in exit_pipe.params if p.required and p.name not in (*kinds, *given)]
    if required:
        raise StepDefinitionError(
            f"{where_}: parameters {required} need defaults or on_exit(...) arguments - "
            f"pipeline {fn.__qualname__}"
        )


def bind_exit_pipeline(exit_pipe: Pipeline, arguments: dict[str, Any], site: str) -> dict[str, Any]:
    """Check ``on_exit(exit_pipe, **arguments)`` and return the arguments.

    Each is a parameter of it, a pipeline parameter or a JSON literal (never a step's output),
    never one the run fills in.

    Raises:
        PipelineError: naming the argument and ``site``.
    """
    import json

    from .._coerce import EMPTY, recorded
    from ..errors import ParameterError

    kinds, params = _kinds(exit_pipe), {p.name: p for p in exit_pipe.params}
    names, bound = list(params), dict(arguments)
    for key, value in arguments.items():
        if key in kinds:
            raise PipelineError(f"{site}: on_exit(...) sets {key!r} itself; do not pass it")
        if key not in names:
            raise PipelineError(
                f"{site}: exit sub-pipeline {exit_pipe.name!r} has no parameter {key!r}; "
                f"its parameters: {names}"
            )
        if isinstance(value, (OutputRef, Collected)):
            raise PipelineError(
                f"{site}: on_exit({exit_pipe.name}, ...) passes a step output to {key!r}; an "
                "exit handler runs also after failed or skipped steps, which have none: pass "
                "pipeline parameters or literals"
            )
        if isinstance(value, Operand):
            continue
        try:  # a JSON value, as a compiled pipeline carries it (a set, bytes: none)
            json.dumps(value)
        except (TypeError, ValueError):
            raise PipelineError(
                f"{site}: {key}= of exit sub-pipeline {exit_pipe.name!r} gets a "
                f"{type(value).__name__}; its arguments are JSON values"
            ) from None
        param = params[key]  # typed as a step's argument is: a tuple is the list it carries
        try:
            default = EMPTY if param.required else param.default
            bound[key] = recorded(value, param.hint, key, default)[1]
        except ParameterError as exc:
            raise PipelineError(f"{site}: exit sub-pipeline {exit_pipe.name!r}: {exc}") from None
    return bound


def trace_exit_pipeline(
    exit_pipe: Pipeline, arguments: dict[str, Any], site: str, nodes: list[Node]
) -> ExitPipeline:
    """Trace the exit sub-pipeline and check what it may do (see the module docstring).

    Raises:
        PipelineError: a step name shared with the pipeline, a map, an exit handler or
            outputs of its own, or a filled-in parameter passed to a step parameter of
            another name.
    """
    dag, kinds = exit_pipe.dag, _kinds(exit_pipe)
    name = f"exit sub-pipeline {exit_pipe.name!r} ({where(exit_pipe.fn)})"
    if dag.exit_handler is not None or dag.exit_pipeline is not None or dag.outputs:
        raise PipelineError(f"{name}: an exit sub-pipeline has no exit handler or outputs")
    taken = {n.name for n in nodes}
    from .._final_status import final_status_params

    for node in dag.nodes:
        if node.name in taken:
            raise PipelineError(
                f"{name}: step {node.name!r} is also a step of the pipeline; give one another "
                f"name (.with_options(name=...))"
            )
        if node.map is not None:
            raise PipelineError(f"{name}: step {node.name!r} is mapped; an exit handler maps none")
        for key, value in node.arguments.items():
            kind = kinds.get(value.name) if isinstance(value, PipelineParam) else None
            ok = key in final_status_params(node.spec) if kind == "final_status" else key == kind
            if kind is not None and not ok:
                raise PipelineError(
                    f"{node.call_site}: {key}={value.name} passes the {kind.replace('_', ' ')} "
                    f"to step {node.name!r}; pass it to a parameter named {kind!r} (a final "
                    "status: one annotated PipelineTaskFinalStatus), as an exit step gets it"
                )
    return ExitPipeline(exit_pipe, dag, arguments, site, kinds)


def run_exit(executor: LocalExecutor, state: str, error: str) -> tuple[str, str]:
    """Run the exit step, or the exit sub-pipeline's steps, as steps of the pipeline run.

    Returns the pipeline's final ``(state, error)``: a pipeline that completed ends in error
    when an exit step failed, as Argo marks a workflow whose ``onExit`` node failed.
    """
    names = _run_exit_steps(executor, state, error)
    failed = [n for n in names if executor.states.get(n) in FAILED]
    exit_ = executor.dag.exit_pipeline
    handled = (
        exit_ is not None
        and (executor.dag.exit_handler is None or executor.dag.exit_handler.name not in failed)
        and final_state(exit_.dag, executor.states) == "completed"
    )  # the exit sub-pipeline's own failures its leaves handle, by the leaf rule
    if state != "completed" or not failed or handled:
        return state, error
    from .run import step_states

    rows = step_states(executor.run)
    return "error", "; ".join(
        f"exit step {n!r} failed: {rows.get(n, {}).get('error') or 'error'}" for n in failed
    )


def _run_exit_steps(executor: LocalExecutor, state: str, error: str) -> list[str]:
    from .._final_status import PipelineTaskFinalStatus
    from ._inputs import Resolver

    names: list[str] = []
    if executor.dag.exit_handler is not None:
        _run_exit(executor, executor.dag.exit_handler, state, error)
        names.append(executor.dag.exit_handler.name)
    exit_ = executor.dag.exit_pipeline
    if exit_ is None:
        return names
    status = PipelineTaskFinalStatus(
        state, executor.run.uid, executor.pipe.name, None, error or None, "local"
    )
    filled = {
        "state": state,
        "failures": sorted(n for n, s in executor.states.items() if s in FAILED),
        "final_status": status.to_dict(),
    }
    values = exit_.values(executor.params, filled)
    saved = executor.dag, executor.inputs
    executor.dag = exit_.dag
    executor.inputs = Resolver(
        executor.runs, values, executor.db, executor.project, executor.run.uid
    )
    try:
        executor._schedule()
    finally:
        executor.dag, executor.inputs = saved
    return names + [n.name for n in exit_.nodes]


def _run_exit(ex: LocalExecutor, node: Node, state: str, error: str) -> None:
    """Run the ``on_exit`` step ``node``, given the pipeline's ``state`` and ``error``."""
    from ._status import exit_params
    from ._stepexec import StepCall, execute

    labels = {
        "pipeline": ex.pipe.name,
        "pipeline_uid": ex.run.uid,
        "step": node.name,
        "exit_handler": "true",
    }
    call = StepCall(
        node.step,
        node.spec,
        node.name,
        {**ex.inputs.resolve(node)[0], **exit_params(node, state, error, ex)},
        {},
        labels,
        ex.project,
        ex.artifact_path,
        ex.run.uid,
        ex.run.uid,
    )
    ex._complete(node, call, execute(call, ex.db))
