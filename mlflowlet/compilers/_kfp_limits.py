"""What KFP v2 cannot carry: each refused at compile time, naming the construct and the fix.

KFP's ``PipelineSpec`` has no place for some constructs a local run and Argo carry; compiling
them anyway would run something else than the local run, so :func:`refuse_unsupported` raises
:class:`~mlflowlet.errors.CompileError` instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pipelines.graph import PipelineGraph

from ..errors import CompileError
from ._plan import cached


def refuse_unsupported(plan: Any, dag: Any) -> None:
    """Raise for the first construct of ``plan`` KFP v2 cannot carry exactly.

    Raises:
        CompileError: names the step, the construct and what to do instead.
    """
    from ._argo_quote import check_when_values

    defaults = {name: default for name, (_t, default, _r) in plan.params.items()}
    check_when_values(dag, defaults, "pipeline parameter default", "kfp")
    for st in plan.steps:
        for up, on in st.node.after_on.items():
            if on in ("failure", "done"):
                _refuse_status_step(st, up, on)
    if dag.exit_pipeline is not None:
        exit_ = dag.exit_pipeline
        raise CompileError(
            f"exit sub-pipeline {exit_.pipe.name!r} ({exit_.site}): an exit handler of several "
            "steps cannot be expressed on KFP v2 (dsl.ExitHandler runs one exit task, and the "
            "final status reaches only a component's PipelineTaskFinalStatus input, never the "
            "steps of a sub-pipeline); use one exit step, or target='argo' (onExit DAG)"
        )
    if plan.exit_step is not None and "failures" in plan.exit_step.params:
        raise CompileError(
            f"exit step {plan.exit_step.name!r} ({plan.exit_step.node.call_site}) takes "
            "'failures': KFP v2 gives an exit task one PipelineTaskFinalStatus (a state and one "
            "error message), not the failed tasks; drop the parameter, or use target='argo' "
            "({{workflow.failures}})"
        )
    for st in [*plan.steps, *([plan.exit_step] if plan.exit_step is not None else [])]:
        spec = st.node.spec
        if spec.cache_max_age is not None and cached(spec, plan.options):
            raise CompileError(
                f"step {st.name!r} ({st.node.call_site}): a cache max age "
                f"({spec.cache_max_age}) cannot be expressed on KFP v2 (its task "
                "PipelineSpec caching options hold enableCache and cacheKey only); use "
                "cache=True, or target='argo' (memoize maxAge)"
            )


def refuse_maps_over_maps(dag: PipelineGraph) -> None:
    """Refuse a map over collected results, or a condition on the item: KFP v2 has neither.

    ``dsl.ParallelFor`` takes a list or one task output, not ``dsl.Collected`` (the SDK fails on
    it), and a collected list holds only the items that ran, which only the engine knows.

    Raises:
        CompileError: names the step, the construct and what to do instead.
    """
    from ..pipelines._loops import item_tested
    from ..pipelines.refs import Collected

    for node in dag.nodes:
        if node.map is not None and isinstance(node.map.items, Collected):
            raise CompileError(
                f"step {node.name!r} ({node.call_site}) maps over {node.map.items!r}: a map over "
                "a mapped step's collected results cannot be expressed on KFP v2 (dsl.ParallelFor "
                "takes no dsl.Collected); use target='argo' (withParam over the aggregated outputs)"
            )
        if node.map is not None and item_tested(node):
            raise CompileError(
                f"step {node.name!r} ({node.call_site}) maps under `with condition("
                f"{node.condition})`, which tests the item: a per-item condition cannot be "
                "expressed on KFP v2 yet; use target='argo' (when on the fanned-out task)"
            )


def _refuse_status_step(st: Any, up: str, on: str) -> None:
    """``node.after(up, on='failure'|'done')``: KFP v2 has no task that runs on another's end.

    Its only such construct, ``ignore_upstream_failure()`` (``ALL_UPSTREAM_TASKS_COMPLETED``),
    is compiled by KFP's backend into an Argo exit lifecycle hook of the upstream task
    (``argocompiler/dag.go``, KFP >= 2.4): the run's status ignores it (a failure it handles
    still fails the run) and Argo never starts the hook of a failed task that has dependents
    (argo-workflows#16057), so it would not run what the local run runs.
    """
    raise CompileError(
        f"step {st.name!r} ({st.node.call_site}) runs after {up!r} on={on!r}: a "
        "status-conditioned step cannot be expressed on KFP v2 (ignore_upstream_failure() "
        "becomes an Argo exit hook of the upstream, which a failed upstream with dependents "
        "never starts and the run's status ignores); use target='argo' (its task depends "
        "carries the status)"
    )
