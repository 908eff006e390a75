"""Resume a pipeline run: reuse the completed steps of an earlier run of the same pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import PipelineError
from ..model import RunObject

if TYPE_CHECKING:
    from .executor import LocalExecutor


def load_resume(ex: LocalExecutor, uid: str) -> None:
    """Fill ``ex.reused`` with the steps of run ``uid`` that ``ex`` need not run again.

    A step is reused when it completed, every upstream step is reused and its code is unchanged.

    Raises:
        PipelineError: ``uid`` is no run of this pipeline, or it ran with other parameters.
    """
    old = ex.db.read_run(uid, project=ex.project)
    labels = old["metadata"].get("labels", {})
    if labels.get("kind") != "pipeline" or labels.get("pipeline") != ex.pipe.name:
        found = labels.get("pipeline") or old["metadata"].get("name")
        raise PipelineError(
            f"run {uid} is not a run of pipeline {ex.pipe.name!r} (it is {found!r})"
        )
    before = old.get("spec", {}).get("params", {})
    changed = sorted(k for k in set(before) | set(ex.params) if before.get(k) != ex.params.get(k))
    if changed:
        shown = ", ".join(f"{k} ({before.get(k)!r} -> {ex.params.get(k)!r})" for k in changed)
        raise PipelineError(
            f"cannot resume run {uid} with different parameters: {shown}; "
            "resume with the same values, or start a new run"
        )
    steps = old.get("status", {}).get("steps", {})
    for node in ex.dag.nodes:  # topological: reuse only when every upstream is reused
        entry = steps.get(node.name) or {}
        if entry.get("state") != "completed" or any(
            up not in ex.reused for up in ex.dag.upstream(node.name)
        ):
            continue
        prev = RunObject.model_validate(ex.db.read_run(entry["uid"], project=ex.project))
        if prev.status.code_hash in ("", ex._code(node.step.fn)):
            prev._record_in(ex.db)
            ex.reused[node.name] = prev
