"""What ``--check`` compares between a local run and the compiled run of the same pipeline.

The pipeline's final state, each step's state, results, artifacts, attempts, printed output,
lineage, ordering and the pipeline's outputs are compared. Every comparison is exact: values
compare as their JSON text (``1`` is not ``1.0``, ``"1"`` is
not ``1``), artifacts by the sha256 of their bytes, printed output as the run's stored log
(logger timestamps aside). States compare as the local executor names them: the engines'
``Skipped`` and ``Omitted`` both mean the local ``skipped``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import TYPE_CHECKING, Any

from ._naming import param_name
from ._runs import PodRun

if TYPE_CHECKING:
    from ..db.base import RunDB
    from ..model import RunObject

_STAMP = re.compile(r"^> \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} ", re.M)


def exact(value: Any) -> str:
    """Return a value's exact text (types kept: ``1`` and ``1.0`` differ)."""
    return json.dumps(value, default=repr)  # key order too: a dict keeps it locally


def file_digest(uri: str) -> str:
    """Return the sha256 of the bytes at an artifact URI (a local path or any store URL)."""
    from .._wire import digest
    from ..datastore import get_dataitem

    local = uri[len("file://") :] if uri.startswith("file://") else uri
    if os.path.exists(local):
        return digest(local)
    return hashlib.sha256(get_dataitem(uri).get()).hexdigest()


def log_text(db: RunDB, uid: str, project: str) -> str:
    """Return a run's stored log with logger timestamps blanked (they differ run to run)."""
    try:
        data = db.get_log(uid, project)
    except Exception:  # no log stored
        return ""
    return _STAMP.sub("> ", data.decode("utf-8", "replace"))


def _drop(results: dict[str, Any], keys: set[str]) -> dict[str, str]:
    return {k: exact(v) for k, v in results.items() if k not in keys}


def decode_output(value: Any, collected: bool) -> Any:
    """Return a pipeline output's value from what the engine holds.

    A result is its JSON text; a collected result a list of item texts (KFP's list, or Argo's
    aggregated JSON list), each the JSON text of the item's JSON (see :mod:`mlflowlet._wire`).
    """
    from .._wire import _items

    if isinstance(value, str):
        value = json.loads(value)
    return _items(value) if collected else value


def local_items(run: Any, name: str) -> list[dict[str, Any]]:
    """Return the run dicts of a local mapped step's items, in item order."""
    step = run.steps[name]
    found = run._db.list_runs(uid=step.uid, iter=True, sort=False)
    items = [r for r in found if r["metadata"].get("iteration", 0) > 0]
    return sorted(items, key=lambda r: r["metadata"]["iteration"])


class Comparison:
    """Compares one local ``PipelineRun`` with one compiled check run (see the module doc)."""

    def __init__(
        self,
        local: Any,
        report: Any,
        dag: Any,
        compiled_db: RunDB,
        ignore: dict[str, list[str]] | None = None,
    ) -> None:
        self.local, self.report, self.dag, self.db = local, report, dag, compiled_db
        self.ignore = ignore or {}
        self.pods: dict[str, list[PodRun]] = {}
        for pod in report.pods:
            self.pods.setdefault(pod.node, []).append(pod)
        self.out: list[str] = []

    def differences(self) -> list[str]:
        """Return one line per difference (empty when the runs agree)."""
        self.final_state()
        self.states()
        for name, group in sorted(self.pods.items()):
            if name in self.local.steps and self.report.states.get(name) == "completed":
                self.step(name, group)
            elif name in self.local.steps and name in self.dag and self.dag.node(name).map:
                self.items_run(name, group)
        self.lineage()
        self.order()
        self.outputs()
        return self.out

    def outputs(self) -> None:
        """Compare the pipeline's outputs: values exactly, artifacts by their bytes."""
        if not self.dag.outputs or self.local.state != "completed":
            return
        want = self.local.run.status.results
        arts = {a.get("key"): a for a in self.local.run.status.artifacts}
        got = self.report.outputs
        for key in self.dag.outputs:
            if key not in got:
                self.out.append(f"pipeline output {key!r}: missing in the compiled run")
                continue
            kind, value = got[key]
            if kind == "artifact":
                if value != file_digest(arts.get(key, {}).get("uri", "")):
                    self.out.append(f"pipeline output {key!r} holds other bytes than locally")
                continue
            from ..pipelines.refs import Collected

            try:
                decoded = decode_output(value, isinstance(self.dag.outputs[key], Collected))
            except (TypeError, ValueError) as exc:
                self.out.append(f"pipeline output {key!r}: {exc}")
                continue
            if exact(decoded) != exact(want.get(key)):
                self.out.append(
                    f"pipeline output {key!r}: {exact(decoded)} != local {exact(want.get(key))}"
                )

    def final_state(self) -> None:
        """Compare the pipeline's own final state (the engine's workflow status, as named here)."""
        got = "completed" if self.report.status == "Succeeded" else "error"
        if self.local.state != got:
            self.out.append(
                f"pipeline: local run {self.local.state}, compiled run {got} ({self.report.status})"
            )

    def states(self) -> None:
        entries = self.local.run.status.steps
        for name in sorted(set(entries) | set(self.report.states)):
            want = (entries.get(name) or {}).get("state", "missing")
            got = self.report.states.get(name, "missing")
            if want != got:
                why = self.report.messages.get(name, "")
                self.out.append(
                    f"step {name!r}: local run {want}, compiled run {got}"
                    + (f" ({why})" if why else "")
                )

    def items_run(self, name: str, group: list[PodRun]) -> None:
        """Compare which items of a map that did not complete ran, and how each ended."""
        want = [
            (r["metadata"]["iteration"], r.get("status", {}).get("state"))
            for r in local_items(self.local, name)
        ]
        got = sorted((p.iteration, "completed" if p.ok else "error") for p in group)
        if want and want != got:  # none ran locally: it failed before its fan-out (not a list)
            self.out.append(f"step {name!r}: items run (item, state) {got} != local {want}")

    def step(self, name: str, group: list[PodRun]) -> None:
        drop = set(self.ignore.get(name, []))
        node = self.dag.node(name) if name in self.dag else None
        if node is not None and node.map is not None:
            items = local_items(self.local, name)
            want = [_drop(r.get("status", {}).get("results", {}), drop) for r in items]
            pods = sorted(group, key=lambda p: p.iteration)
            got = [_drop(p.results, drop) for p in pods]
            if want != got:
                self.out.append(f"step {name!r}: item results {got} != local {want}")
            counted = bool(node.spec.retries)  # else `attempt` may be the author's own label
            labels = [r["metadata"].get("labels", {}) for r in items]
            tries = [int(lab.get("attempt", 1)) if counted else 1 for lab in labels]
            if [p.attempts for p in pods] != tries:  # each item's pod retries alone
                got_tries = [p.attempts for p in pods]
                self.out.append(f"step {name!r}: item attempts {got_tries} != local {tries}")
            step = self.local.steps[name]
            self.logs(name, step.uid, step.metadata.project, pods, True, every_attempt=True)
            return
        step, pod = self.local.steps[name], group[-1]
        want_results = _drop(step.status.results, drop)
        got_results = _drop(pod.results, drop)
        if want_results != got_results:
            self.out.append(f"step {name!r}: results {got_results} != local {want_results}")
        self.artifacts(name, step, pod)
        self.final_status(name, step, pod)
        attempts = (self.local.run.status.steps.get(name) or {}).get("attempts", 1)
        if pod.attempts != attempts:
            self.out.append(f"step {name!r}: {pod.attempts} attempt(s), local {attempts}")
        fanned = node is not None and node.hyper is not None and node.hyper.parallel != 1
        self.logs(name, step.uid, step.metadata.project, [pod], fanned)

    def final_status(self, name: str, step: RunObject, pod: PodRun) -> None:
        """Compare an exit step's final status objects by ``state``, their one common field.

        The other fields are each engine's own (``mlflowlet._final_status``): not compared.
        """
        exits = [self.dag.exit_handler] if self.dag.exit_handler is not None else []
        exits += self.dag.exit_pipeline.nodes if self.dag.exit_pipeline is not None else []
        exit_node = next((n for n in exits if n.name == name), None)
        if exit_node is None:
            return
        from .._final_status import final_status_params

        got_params = (pod.run or {}).get("spec", {}).get("params", {})
        for key in final_status_params(exit_node.spec):
            want = (step.spec.params.get(key) or {}).get("state")
            got = (got_params.get(key) or {}).get("state")
            if want != got:
                self.out.append(
                    f"step {name!r}: final status {key!r} state {got!r} != local {want!r}"
                )

    def artifacts(self, name: str, step: Any, pod: PodRun) -> None:
        want = {a.get("key"): a for a in step.status.artifacts}
        got = {a.get("key") for a in (pod.run or {}).get("status", {}).get("artifacts", [])}
        if sorted(want) != sorted(got):
            self.out.append(f"step {name!r}: artifacts {sorted(got)} != local {sorted(want)}")
        for key in step.spec.outputs or []:
            sha = pod.artifacts.get(param_name(key), pod.artifacts.get(key))
            if key in want and sha is not None and sha != file_digest(want[key].get("uri", "")):
                self.out.append(f"step {name!r}: artifact {key!r} holds other bytes than locally")

    def logs(
        self,
        name: str,
        uid: str,
        project: str,
        pods: list[PodRun],
        fanned: bool,
        every_attempt: bool = False,
    ) -> None:
        """Compare what the step printed.

        A local run keeps one log per step (its iterations and map items share it, a retried
        item's every attempt too); compiled, each map item is a pod with its own log, each of
        its attempts a run of its own (``every_attempt``: all read). For a map (and a sweep
        whose iterations run at once) the lines are compared in any order, since parallel
        items interleave.
        """
        want = log_text(self.local._db, uid, project)
        got = "".join(
            (p.stdout + p.stderr)  # a container step: what it printed (the local log's order)
            if p.plain
            else "".join(
                log_text(self.db, r["metadata"].get("uid", ""), r["metadata"].get("project", ""))
                for r in [*(p.earlier if every_attempt else []), p.run]
            )
            if p.run
            else ""
            for p in pods
        )
        if fanned:
            same = sorted(want.splitlines()) == sorted(got.splitlines())
        else:
            same = want == got
        if not same:
            self.out.append(
                f"step {name!r}: printed output {got[-200:]!r} != local {want[-200:]!r}"
            )

    def lineage(self) -> None:
        report = self.report
        if report.lineage != report.local_lineage:
            extra = sorted(set(report.lineage) - set(report.local_lineage))
            missing = sorted(set(report.local_lineage) - set(report.lineage))
            self.out.append(f"lineage differs: only compiled {extra}, only local {missing}")

    def order(self) -> None:
        """Check each edge's source ended before its target started (per item within a loop)."""
        for edge in self.dag.edges:
            before, after = self.pods.get(edge.source), self.pods.get(edge.target)
            if before and after and _per_item(self.dag, edge):  # a mapped sub-pipeline's body
                ends = {p.iteration: p.ended for p in before}
                per = max(len(after) // len(before), 1)  # a nested loop's items per outer item
                if any(
                    ends.get((p.iteration - 1) // per + 1, p.started) > p.started for p in after
                ):
                    self.out.append(
                        f"step {edge.target!r} started before step {edge.source!r} finished "
                        f"for the same item ({edge.kind} edge)"
                    )
                continue
            if before and after and max(p.ended for p in before) > min(p.started for p in after):
                self.out.append(
                    f"step {edge.target!r} started before step {edge.source!r} finished "
                    f"({edge.kind} edge)"
                )


def _per_item(dag: Any, edge: Any) -> bool:
    """Whether ``edge`` joins two steps of one mapped sub-pipeline (each item waits for its own)."""
    source, target = dag.node(edge.source), dag.node(edge.target)
    loops = [n.map.loop if n.map is not None else None for n in (source, target)]
    return loops[0] is not None and loops[1] is not None and loops[0] in loops[1].chain()
