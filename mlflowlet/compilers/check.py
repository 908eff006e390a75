"""Check a compiled workflow locally: run its containers as subprocesses, compare with a local run.

:func:`check` compiles the pipeline, executes the compiled document's container commands in
dependency order (``_local_argo`` interprets Argo YAML; ``_local_kfp`` drives ``kfp.local``
with its container launch replaced by a subprocess), with a temporary directory standing in
for the artifact repository, then runs the same pipeline directly (``pipe.run``) and compares:
step states, results, artifact keys, and the lineage shape - which output of which step (and
iteration) fed which parameter of which step, with the sha256 of every artifact passed.
This proves the generated commands, parameters and paths actually run the same code.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ._naming import kfp_name, param_name
from ._runs import PodRun

__all__ = ["CheckReport", "check", "local_shape", "run_compiled"]


@dataclass
class CheckReport:
    """The outcome of :func:`check`.

    Attributes:
        target: ``argo`` or ``kfp``.
        status: the compiled workflow's final status (``Succeeded`` / ``Failed``).
        pods: every container run, in the order they ran.
        states: step name to its state in the compiled run (``skipped`` when a condition held
            it back).
        lineage: the compiled run's lineage shape (sorted tuples, see :func:`local_shape`).
        local_lineage: the local run's lineage shape.
        differences: one line per difference; empty when the runs agree.
    """

    target: str
    status: str
    pods: list[PodRun]
    states: dict[str, str]
    lineage: list[tuple[Any, ...]] = field(default_factory=list)
    local_lineage: list[tuple[Any, ...]] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the compiled and the local run agree."""
        return not self.differences

    def summary(self) -> str:
        """Return a few lines for the command line."""
        head = (
            f"{self.target}: {len(self.pods)} container run(s), workflow {self.status}; "
            f"{'matches the local run' if self.ok else 'differs from the local run'}"
        )
        return "\n".join([head, *(f"  - {d}" for d in self.differences)])


def _pythonpath(pipe: Any) -> list[str]:
    """Directories that make every step's module importable (the image would hold them)."""
    roots: list[str] = []
    dag = pipe.dag
    nodes = [*dag.nodes, *([dag.exit_handler] if dag.exit_handler is not None else [])]
    for node in nodes:
        module = node.spec.module
        mod = sys.modules.get(module)
        path = getattr(mod, "__file__", None)
        if not path:
            continue
        root = os.path.dirname(os.path.abspath(path))
        for _ in range(module.count(".")):
            root = os.path.dirname(root)
        if root not in roots:
            roots.append(root)
    return roots


def run_compiled(
    doc: dict[str, Any],
    target: str,
    workdir: str,
    params: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    secrets: dict[str, dict[str, str]] | None = None,
    timeout: float = 300.0,
) -> tuple[str, list[PodRun], dict[str, str], list[tuple[Any, ...]]]:
    """Run a compiled document's containers locally.

    Returns:
        ``(status, pods, states, lineage shape)``.
    """
    if target == "argo":
        from ._local_argo import ArgoLocalRunner

        runner: Any = ArgoLocalRunner(doc, workdir, params, env, secrets, timeout)
    else:
        from ._local_kfp import KFPLocalRunner

        runner = KFPLocalRunner(doc, workdir, params, env, secrets, timeout)
    status = runner.run()
    return status, runner.pods, runner.states(), runner.shape()


def local_shape(run: Any) -> list[tuple[Any, ...]]:
    """Return the lineage shape of a local ``PipelineRun``.

    Sorted ``(producer step, producer iteration, output, consumer step, parameter, sha256 or
    '')`` rows, one per data edge (and item).
    """
    from ..datastore import get_dataitem
    from ._runs import digest as _digest

    names = {r.uid: name for name, r in run.steps.items()}
    rows = set()
    for row in run.lineage():
        sha = ""
        if row.get("artifact_uri"):
            uri = row["artifact_uri"]
            local = uri[len("file://") :] if uri.startswith("file://") else uri
            if os.path.isfile(local):
                sha = _digest(local)
            else:
                import hashlib

                sha = hashlib.sha256(get_dataitem(uri).get()).hexdigest()
        rows.add(
            (
                names.get(row["producer_uid"], row["producer_uid"]),
                row["producer_iter"],
                param_name(row["output"]),
                names.get(row["consumer_uid"], row["consumer_uid"]),
                row["consumer_param"],
                sha,
            )
        )
    return sorted(rows)


def _canonical(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Spell output keys one way: Argo keeps ``model-txt``, KFP ``model_txt``, ``return_``."""
    return sorted((*r[:2], kfp_name(param_name(r[2])), *r[3:]) for r in rows)


def _local_items(run: Any, name: str) -> list[dict[str, Any]]:
    step = run.steps[name]
    found = run._db.list_runs(uid=step.uid, iter=True, sort=False)
    items = sorted(
        (r for r in found if r["metadata"].get("iteration", 0) > 0),
        key=lambda r: r["metadata"]["iteration"],
    )
    return [r.get("status", {}).get("results", {}) for r in items]


def compare(
    local: Any,
    report: CheckReport,
    mapped: set[str],
    ignore_results: dict[str, list[str]] | None = None,
) -> list[str]:
    """Return the differences between a local ``PipelineRun`` and a compiled check."""
    out: list[str] = []
    ignore = ignore_results or {}
    entries = local.run.status.steps
    for name in sorted(set(entries) | set(report.states)):
        want = (entries.get(name) or {}).get("state", "missing")
        got = report.states.get(name, "missing")
        if want != got:
            out.append(f"step {name!r}: local run {want}, compiled run {got}")
    pods: dict[str, list[PodRun]] = {}
    for pod in report.pods:
        pods.setdefault(pod.node, []).append(pod)
    for name, group in sorted(pods.items()):
        if name not in local.steps or report.states.get(name) != "completed":
            continue
        drop = set(ignore.get(name, []))
        if name in mapped:
            want_items = [
                {k: v for k, v in r.items() if k not in drop} for r in _local_items(local, name)
            ]
            got_items = [
                {k: v for k, v in p.results.items() if k not in drop}
                for p in sorted(group, key=lambda p: p.iteration)
            ]
            if want_items != got_items:
                out.append(f"step {name!r}: item results {got_items} != local {want_items}")
            continue
        step = local.steps[name]
        want_results = {k: v for k, v in step.status.results.items() if k not in drop}
        got_results = {k: v for k, v in group[-1].results.items() if k not in drop}
        if want_results != got_results:
            out.append(f"step {name!r}: results {got_results} != local {want_results}")
        want_keys = sorted(a.get("key") for a in step.status.artifacts)
        got_keys = sorted(
            a.get("key") for a in (group[-1].run or {}).get("status", {}).get("artifacts", [])
        )
        if want_keys != got_keys:
            out.append(f"step {name!r}: artifacts {got_keys} != local {want_keys}")
    if report.lineage != report.local_lineage:
        extra = sorted(set(report.lineage) - set(report.local_lineage))
        missing = sorted(set(report.local_lineage) - set(report.lineage))
        out.append(f"lineage differs: only compiled {extra}, only local {missing}")
    return out


def check(
    pipe: Any,
    target: str = "argo",
    image: str | None = None,
    params: dict[str, Any] | None = None,
    secret_values: dict[str, dict[str, str]] | None = None,
    workdir: str | None = None,
    ignore_results: dict[str, list[str]] | None = None,
    timeout: float = 300.0,
    **options: Any,
) -> CheckReport:
    """Compile ``pipe``, run the compiled workflow locally, and compare it with ``pipe.run``.

    Args:
        pipe: the pipeline.
        target: ``argo`` or ``kfp``.
        image: the image to compile with (not pulled: the containers' commands run here).
        params: pipeline parameter values for both runs.
        secret_values: values of the Kubernetes secrets the steps reference,
            ``{secret name: {key: value}}`` (the compiled YAML holds references only).
        workdir: where pods and the stand-in artifact repository go (default: a temp dir).
        ignore_results: step name to result keys not to compare (e.g. ones that read secrets).
        timeout: seconds one container may run.
        **options: compile options (see :func:`mlflowlet.compile`), e.g. ``secrets=``
            (the references).

    Returns:
        A :class:`CheckReport` (``ok`` when both runs agree).
    """
    from ..db import get_run_db
    from . import compile as compile_pipeline

    doc = compile_pipeline(pipe, target=target, image=image, **options)
    own = tempfile.TemporaryDirectory(prefix="mlflowlet-check-") if workdir is None else None
    root = own.name if own is not None else str(workdir)
    try:
        os.makedirs(root, exist_ok=True)
        dbdir = os.path.join(root, "rundb")
        env = {
            "MLFLOWLET_DBPATH": dbdir,
            "PYTHONPATH": os.pathsep.join(
                [*_pythonpath(pipe), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        status, pods, states, shape = run_compiled(
            doc, target, os.path.join(root, target), params, env, secret_values, timeout
        )
        report = CheckReport(target, status, pods, states, _canonical(shape))
        db = get_run_db(os.path.join(root, "local-db"), cached=False)
        try:
            local = pipe.run(
                dict(params or {}), db=db, artifact_path=os.path.join(root, "local-artifacts")
            )
            report.local_lineage = _canonical(local_shape(local))
            mapped = {n.name for n in pipe.dag.nodes if n.map is not None}
            report.differences = compare(local, report, mapped, ignore_results)
        finally:
            db.close()  # type: ignore[attr-defined]
        return report
    finally:
        if own is not None:
            own.cleanup()
