"""One view of what a pipeline run did, built from a local run or from a compiled check.

The corpus expectations (``port_cases.py``) assert on an :class:`Outcome`, so the very same
assertions prove the local run and each compiled run compute what the original computes -
independently of ``--check``'s own comparison.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mlflowlet.entrypoint import RUN_JSON_MARKER


@dataclass
class Outcome:
    """What a run did, per step (node) name.

    Attributes:
        where: ``local``, ``argo`` or ``kfp``.
        state: the pipeline's final state (``completed`` / ``error``).
        states: step name to its state (``completed``, ``error``, ``skipped``...).
        results: step name to its results (the last attempt; mapped steps: none).
        items: mapped step name to each item's results, in item order.
        logs: step name to the lines it printed (every item and attempt).
        attempts: step name to how many times it ran.
        order: step names in the order they started.
        artifacts: (step name, key) to the artifact's bytes.
        outputs: the pipeline's outputs (what its function returns): values, artifacts' bytes.
    """

    where: str
    state: str
    states: dict[str, str]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    artifacts: dict[tuple[str, str], bytes] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def printed(self, name: str) -> list[str]:
        """The non-empty lines step ``name`` printed."""
        return [ln for ln in self.logs.get(name, []) if ln.strip()]

    def ran_before(self, first: str, then: str) -> bool:
        """True when ``first`` started before ``then``."""
        return self.order.index(first) < self.order.index(then)

    def ran(self) -> set[str]:
        """The steps that completed."""
        return {n for n, s in self.states.items() if s == "completed"}


def typed(value: Any) -> Any:
    """``value`` with every scalar paired with its type, so ``1``, ``1.0`` and ``True`` differ.

    Compare ``typed(got) == typed(want)``: plain ``==`` holds for ``{'A': 1} == {'A': 1.0}``.
    """
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if not ln.startswith(RUN_JSON_MARKER)]


def _read(uri: str) -> bytes:
    from mlflowlet.datastore import get_dataitem

    return get_dataitem(uri).get()


def from_local(run: Any, db: Any, mapped: set[str]) -> Outcome:
    """Build the outcome of a local ``PipelineRun`` recorded in ``db``."""
    entries = run.run.status.steps
    out = Outcome("local", run.state, {n: e["state"] for n, e in entries.items()})
    out.attempts = {n: int(e.get("attempts", 1)) for n, e in entries.items()}
    started = []
    for name, step in run.steps.items():
        out.logs[name] = _lines(step.logs())
        started.append((step.status.start_time or "~", name))
        for art in step.status.artifacts:
            out.artifacts[(name, art["key"])] = _read(art["target_path"])
        if name in mapped:
            found = db.list_runs(uid=step.uid, iter=True, sort=False)
            items = sorted(
                (r for r in found if r["metadata"].get("iteration", 0) > 0),
                key=lambda r: r["metadata"]["iteration"],
            )
            out.items[name] = [r.get("status", {}).get("results", {}) for r in items]
        else:
            out.results[name] = dict(step.status.results)
    out.order = [name for _t, name in sorted(started)]
    out.outputs = {k: v.get() if hasattr(v, "get") and hasattr(v, "url") else v
                   for k, v in run.outputs.items()}
    return out


def _pod_log(pod: Any, db: Any) -> list[str]:
    """What a pod printed, as its run recorded it (the pod's stdout tail when it recorded none)."""
    uid = (pod.run or {}).get("metadata", {}).get("uid")
    return _lines(db.get_log(uid).decode() if uid else pod.log)


def from_report(report: Any, mapped: set[str], db: Any, collected: set[str] = frozenset()
                ) -> Outcome:
    """Build the outcome of a compiled run (a ``CheckReport``) whose pods recorded into ``db``.

    ``collected`` names the pipeline outputs that are collected lists.
    """
    state = "completed" if report.status == "Succeeded" else "error"
    out = Outcome(report.target, state, dict(report.states))
    groups: dict[str, list[Any]] = {}
    for pod in report.pods:
        if pod.node not in groups:
            out.order.append(pod.node)
        groups.setdefault(pod.node, []).append(pod)
    for name, pods in groups.items():
        out.logs[name] = [ln for pod in pods for ln in _pod_log(pod, db)]
        out.attempts[name] = sum(pod.attempts for pod in pods)
        last = pods[-1]
        for art in (last.run or {}).get("status", {}).get("artifacts", []):
            path = art.get("target_path", "")
            if os.path.exists(path) or "://" in path:
                out.artifacts[(name, art["key"])] = _read(path)
        if name in mapped:
            out.items[name] = [p.results for p in sorted(pods, key=lambda p: p.iteration)]
        else:
            out.results[name] = last.results
    out.outputs = _outputs(report, collected)
    return out


def _outputs(report: Any, collected: set[str]) -> dict[str, Any]:
    """The compiled run's outputs, decoded as --check decodes them (artifacts: their sha256)."""
    from mlflowlet.compilers._compare import decode_output

    return {key: value if kind == "artifact" else decode_output(value, key in collected)
            for key, (kind, value) in report.outputs.items()}
