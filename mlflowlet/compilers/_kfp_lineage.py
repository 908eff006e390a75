"""The lineage shape of a checked KFP run: which output fed which input, read from the IR.

Follows every executor task's inputs through the IR (``taskOutputParameter`` /
``taskOutputArtifact`` to a producer, ``componentInputParameter`` up to the group task that
passes it, a loop's ``valueFromParameter`` down to the mapped task, a loop item up to the
iterator's items) and pairs the result with the pods that ran (iterations, artifact digests).
"""

from __future__ import annotations

from typing import Any

from ._naming import kfp_name
from ._runs import PodRun

Row = tuple[Any, ...]


class _IR:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.comps = spec.get("components", {})
        self.dags = {
            "root": spec["root"]["dag"],
            **{k: v["dag"] for k, v in self.comps.items() if "dag" in v},
        }
        self.caller: dict[str, tuple[str, dict[str, Any]]] = {}  # group comp -> (dag, task)
        for dag_name, dag in self.dags.items():
            for task in dag.get("tasks", {}).values():
                ref = task.get("componentRef", {}).get("name", "")
                if ref in self.dags:
                    self.caller[ref] = (dag_name, task)

    def loops(self, dag_name: str) -> list[str]:
        """Return the ParallelFor DAGs ``dag_name`` runs in (itself included), innermost first."""
        out = []
        while dag_name in self.caller:
            if "parameterIterator" in self.caller[dag_name][1]:
                out.append(dag_name)
            dag_name = self.caller[dag_name][0]
        return out

    def is_executor(self, task: dict[str, Any]) -> bool:
        return "executorLabel" in self.comps.get(task.get("componentRef", {}).get("name", ""), {})

    def producers(
        self, dag_name: str, spec: dict[str, Any], kind: str, fanned: bool = False
    ) -> list[tuple[str, str, bool, str]]:
        """Resolve one input spec to ``(producer name, output key, through a loop, its DAG)``."""
        out_key = "taskOutputParameter" if kind == "parameters" else "taskOutputArtifact"
        in_key = "componentInputParameter" if kind == "parameters" else "componentInputArtifact"
        if out_key in spec:
            ref = spec[out_key]
            key = ref.get("outputParameterKey") or ref.get("outputArtifactKey")
            task = self.dags[dag_name]["tasks"][ref["producerTask"]]
            if self.is_executor(task):
                return [(task["taskInfo"]["name"], key, fanned, dag_name)]
            inner = task["componentRef"]["name"]
            outputs = self.dags[inner].get("outputs", {}).get(kind, {}).get(key, {})
            found = []
            sels = (
                [outputs["valueFromParameter"]]
                if "valueFromParameter" in outputs
                else outputs.get("artifactSelectors", [])
            )
            for sel in sels:
                sub = {
                    out_key: {
                        "producerTask": sel.get("producerSubtask"),
                        (
                            "outputParameterKey" if kind == "parameters" else "outputArtifactKey"
                        ): sel.get("outputParameterKey") or sel.get("outputArtifactKey"),
                    }
                }
                found += self.producers(inner, sub, kind, fanned=fanned or "for-loop" in inner)
            return found
        if in_key in spec and dag_name in self.caller:
            name = spec[in_key]
            parent, task = self.caller[dag_name]
            given = task.get("inputs", {}).get(kind, {})
            if name in given:
                return self.producers(parent, given[name], kind, fanned)
            if name.endswith("-loop-item"):  # the item of a ParallelFor: its iterator's items
                items = task.get("parameterIterator", {}).get("items", {}).get("inputParameter")
                if items in given:
                    return self.producers(parent, given[items], kind, fanned)
        return []


def kfp_lineage(
    spec: dict[str, Any], pods: list[PodRun], empty: set[str] | None = None
) -> list[Row]:
    """Return sorted ``(producer, iteration, output, consumer, param, sha256 or '')`` rows.

    Steps in ``empty`` (a loop over no items) read their inputs without running a pod.
    """
    ir = _IR(spec)
    by_node: dict[str, list[PodRun]] = {}
    for pod in pods:
        by_node.setdefault(pod.node, []).append(pod)
    rows = set()
    for dag_name, dag in ir.dags.items():
        for task in dag.get("tasks", {}).values():
            if not ir.is_executor(task):
                continue
            consumer = task["taskInfo"]["name"]
            if consumer not in by_node and consumer not in (empty or ()):
                continue
            for kind in ("parameters", "artifacts"):
                for param, given in task.get("inputs", {}).get(kind, {}).items():
                    for producer, key, fanned, where in ir.producers(dag_name, given, kind):
                        own = ir.loops(where)  # in the consumer's innermost loop: its item's
                        same = not fanned and own and own[0] == next(iter(ir.loops(dag_name)), "")
                        ran = {p.iteration for p in by_node.get(consumer, [])}
                        for pod in by_node.get(producer, []):
                            if not pod.ok or (same and pod.iteration not in ran):
                                continue  # a failed item's outputs reach no consumer
                            it = (
                                pod.iteration
                                if fanned
                                else pod.results.get("best_iteration", pod.iteration)
                            )
                            digests = {kfp_name(k): v for k, v in pod.artifacts.items()}
                            sha = digests.get(key, "") if kind == "artifacts" else ""
                            rows.add((producer, it, key, consumer, param, sha))
    return sorted(rows)
