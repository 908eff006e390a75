"""Check a compiled workflow locally: run its containers as subprocesses, compare with a local run.

:func:`check` compiles the pipeline, validates the document (every DAG edge a dependency,
every reference resolvable, cache keys valid), executes its container commands as the engine
would (``_local_argo`` interprets Argo YAML by the controller's rules; ``_local_kfp`` drives
``kfp.local`` with its container launch replaced by a subprocess and the backend's rules on
top), with a temporary directory standing in for the artifact repository, then runs the same
pipeline directly (``pipe.run``) and compares (see :mod:`._compare`): step states, results
(types included), artifacts (keys and bytes), attempts (retries), printed output, the
lineage shape - which output of which step (and iteration) fed which parameter of which
step, with the sha256 of every artifact passed - and that every step started after the
steps it depends on finished. What a real controller does that cannot be reproduced here
(caching, back-off delays, fail-fast timing) is listed in ``unverified``, never passed over.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._compare import Comparison, file_digest
from ._naming import kfp_name, param_name
from ._runs import PodRun

if TYPE_CHECKING:
    from ..db.base import RunDB

__all__ = ["CheckReport", "CheckSession", "check", "compare", "local_shape", "run_compiled"]


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
        unverified: what a real controller would do that the local run cannot reproduce.
        messages: task name to why the engine failed it without running it (a ``when`` or
            ``withParam`` it cannot evaluate, a reference that does not resolve).
        seconds: how long the compiled run took here.
        outputs: the compiled run's pipeline outputs: name to ``("parameter", text)`` as the
            engine holds it, or ``("artifact", sha256)``.
    """

    target: str
    status: str
    pods: list[PodRun]
    states: dict[str, str]
    lineage: list[tuple[Any, ...]] = field(default_factory=list)
    local_lineage: list[tuple[Any, ...]] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    outputs: dict[str, tuple[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the compiled and the local run agree (in everything checked here)."""
        return not self.differences

    @property
    def complete(self) -> bool:
        """True when nothing the workflow asks of a real controller went unverified."""
        return not self.unverified

    def summary(self) -> str:
        """Return a few lines for the command line."""
        verdict = "matches the local run" if self.ok else "differs from the local run"
        if self.ok and not self.complete:
            verdict += f" in what could be run here ({len(self.unverified)} thing(s) not)"
        head = (
            f"{self.target}: {len(self.pods)} container run(s), workflow {self.status}; {verdict}"
        )
        lines = [head, *(f"  - {d}" for d in self.differences)]
        lines += [f"  (not reproduced here: {u})" for u in self.unverified]
        return "\n".join(lines)


def _pythonpath(pipe: Any) -> list[str]:
    """Directories that make every step's module importable (the image would hold them)."""
    roots: list[str] = []
    dag = pipe.dag
    nodes = [*dag.nodes, *([dag.exit_handler] if dag.exit_handler is not None else [])]
    nodes += dag.exit_pipeline.nodes if dag.exit_pipeline is not None else []
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


def make_runner(
    doc: dict[str, Any],
    target: str,
    workdir: str,
    params: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    secrets: dict[str, dict[str, str]] | None = None,
    timeout: float = 300.0,
) -> Any:
    """Return the local runner of a compiled document (``run()`` it, then read it)."""
    if target == "argo":
        from ._local_argo import ArgoLocalRunner

        return ArgoLocalRunner(doc, workdir, params, env, secrets, timeout)
    from ._local_kfp import KFPLocalRunner

    return KFPLocalRunner(doc, workdir, params, env, secrets, timeout)


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
    runner = make_runner(doc, target, workdir, params, env, secrets, timeout)
    status = runner.run()
    return status, runner.pods, runner.states(), runner.shape()


def local_shape(run: Any) -> list[tuple[Any, ...]]:
    """Return the lineage shape of a local ``PipelineRun``.

    Sorted ``(producer step, producer iteration, output, consumer step, parameter, sha256 or
    '')`` rows, one per data edge (and item).
    """
    names = {r.uid: name for name, r in run.steps.items()}
    rows = set()
    for row in run.lineage():
        sha = file_digest(row["artifact_uri"]) if row.get("artifact_uri") else ""
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
    """Spell output keys one way (Argo ``model-txt``, KFP ``model_txt`` / ``return_``).

    A map's ``KEY__items`` output is the result ``KEY``, as is KFP's ``KEY__out`` (an output
    renamed because an input has its name). A ``KEY__if`` output (a condition's literal) is
    read by conditions only: a step reading one as data does not get the result, so it stays
    a difference.
    """
    return sorted((*r[:2], kfp_name(_strip(param_name(r[2]))), *r[3:]) for r in rows)


def _strip(name: str) -> str:
    for suffix in ("__items", "__out"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def compare(
    local: Any,
    report: CheckReport,
    dag: Any,
    compiled_db: RunDB,
    ignore_results: dict[str, list[str]] | None = None,
) -> list[str]:
    """Return the differences between a local ``PipelineRun`` and a compiled check run."""
    return Comparison(local, report, dag, compiled_db, ignore_results).differences()


def _problems(doc: dict[str, Any], target: str, dag: Any) -> list[str]:
    from ._validate import validate_argo, validate_kfp

    if target == "argo":
        found = validate_argo(doc, dag)
    else:
        found = validate_kfp(doc.get("pipeline_spec", doc), dag)
    return [f"compiled workflow: {p}" for p in found]


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
    from . import compile as compile_pipeline

    doc = compile_pipeline(pipe, target=target, image=image, **options)
    with CheckSession(pipe, doc, target, params, secret_values, workdir, timeout) as session:
        session.report.differences = session.differences(ignore_results)
        return session.report


class CheckSession:
    """One check, open: the compiled run and the local run done, their run DBs still open.

    :func:`check` uses it as a context manager; tests use it to alter the compiled run's record
    before comparing (:meth:`differences`), proving each comparison catches what it should.

    Attributes:
        report: the compiled run (no differences yet).
        local: the local ``PipelineRun``.
        compiled_db: the run DB the compiled run's containers recorded into.
    """

    def __init__(
        self,
        pipe: Any,
        doc: dict[str, Any],
        target: str,
        params: dict[str, Any] | None = None,
        secret_values: dict[str, dict[str, str]] | None = None,
        workdir: str | None = None,
        timeout: float = 300.0,
    ) -> None:
        self.pipe, self.doc, self.target, self.params = pipe, doc, target, dict(params or {})
        self.secrets, self.timeout = secret_values, timeout
        self._own: tempfile.TemporaryDirectory[str] | None = None
        if workdir:
            self.root = os.path.abspath(workdir)
        else:
            self._own = tempfile.TemporaryDirectory(prefix="mlflowlet-check-")
            self.root = self._own.name
        self._dbs: list[Any] = []

    def __enter__(self) -> CheckSession:
        from ..db import get_run_db

        try:
            self.report = self._compiled()
            self.compiled_db = get_run_db(os.path.join(self.root, "rundb"), cached=False)
            db = get_run_db(os.path.join(self.root, "local-db"), cached=False)
            self._dbs = [self.compiled_db, db]
            self.local = self.pipe.run(self.params, db=db)  # artifacts: per run, under the DB
            self.report.local_lineage = _canonical(local_shape(self.local))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _compiled(self) -> CheckReport:
        os.makedirs(self.root, exist_ok=True)
        paths = [*_pythonpath(self.pipe), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {
            "MLFLOWLET_DBPATH": os.path.join(self.root, "rundb"),
            "PYTHONPATH": os.pathsep.join(paths),
        }
        started = time.perf_counter()
        workdir = os.path.join(self.root, self.target)
        from ._types import engine_arguments

        params = engine_arguments(self.pipe.dag, self.params, self.target)
        runner = make_runner(
            self.doc, self.target, workdir, params, env, self.secrets, self.timeout
        )
        status = runner.run()
        report = CheckReport(
            self.target, status, runner.pods, runner.states(), _canonical(runner.shape())
        )
        report.seconds = time.perf_counter() - started
        report.unverified, report.messages = list(runner.unverified), dict(runner.messages)
        report.outputs = dict(runner.outputs)
        return report

    def differences(self, ignore_results: dict[str, list[str]] | None = None) -> list[str]:
        """Return what differs between the compiled and the local run (see :mod:`._compare`)."""
        return _problems(self.doc, self.target, self.pipe.dag) + compare(
            self.local, self.report, self.pipe.dag, self.compiled_db, ignore_results
        )

    def __exit__(self, *exc: Any) -> None:
        for db in self._dbs:
            db.close()
        self._dbs = []
        if self._own is not None:
            self._own.cleanup()
