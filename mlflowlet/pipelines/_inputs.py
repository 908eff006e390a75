"""Resolve a ready node's arguments from its upstream runs: params, inputs, hashes, lineage.

Artifact references become input URIs (the step gets ``DataItem`` s), results become parameter
values, collected references become lists (per item of the mapped step, in item order), pipeline
parameters their run values. Each data edge yields a lineage row; the executor adds the consumer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InputError as InputError  # re-exported: the executor raises it too
from ..model import RunObject
from ._urlinputs import is_url_param, url_version
from .cache import CACHED_FROM
from .refs import Collected, OutputRef, PipelineParam

if TYPE_CHECKING:
    from ..db.base import RunDB
    from .graph import Node


class Resolver:
    """Reads values from the finished runs of one pipeline run.

    Args:
        runs: node name to its finished ``RunObject`` (filled as nodes finish).
        params: the pipeline parameters' values.
        db: the run DB (for the items of mapped steps).
        project: the project (lineage rows).
        pipeline_uid: the pipeline run's uid (lineage rows).
    """

    def __init__(
        self,
        runs: dict[str, RunObject],
        params: dict[str, Any],
        db: RunDB,
        project: str,
        pipeline_uid: str,
    ) -> None:
        self.runs, self.params, self.db = runs, params, db
        self.project, self.pipeline_uid = project, pipeline_uid
        self.records: dict[str, dict[str, Any]] = {}  # input uri -> its artifact record

    def value_of(self, operand: Any) -> Any:
        """Return the value of a pipeline parameter or a result reference."""
        if isinstance(operand, PipelineParam):
            return self.params[operand.name]
        run = self.runs[operand.node]
        if operand.key not in run.status.results:
            raise InputError(
                f"step {operand.node!r} logged no result {operand.key!r} (results: "
                f"{sorted(run.status.results)}); log it with "
                f"context.log_result({operand.key!r}, ...)"
            )
        return run.status.results[operand.key]

    def resolve(self, node: Any) -> tuple[dict, dict, dict, list]:
        """Return ``(params, inputs, input hashes, lineage rows)`` of a ready node.

        Map items are returned as params ``__items__``; lineage rows lack the consumer.
        """
        params: dict[str, Any] = {}
        inputs: dict[str, str] = {}
        hashes: dict[str, Any] = {}
        rows: list[dict[str, Any]] = []
        arguments = dict(node.arguments)
        if node.map is not None:
            arguments["__items__"] = node.map.items
        for param, value in arguments.items():
            fed = node.map.fed if param == "__items__" else (param,)
            if isinstance(value, Collected):
                keys = getattr(node.map, "fields", {}) if param == "__items__" else {}
                self._collect(value.ref, param, params, inputs, hashes, rows, fed, keys)
            elif isinstance(value, OutputRef) and value.kind == "artifact":
                run = self.runs[value.node]
                art = _artifact(run, value.key, value.node)
                inputs[param], hashes[param] = art["uri"], art.get("hash") or art["uri"]
                self.records[art["uri"]] = art
                it = art.get("link_iteration") or art.get("iteration", 0)  # a sweep's best
                rows += [self._row(run, it, value.key, fp, art) for fp in fed]
            elif isinstance(value, PipelineParam) and _feeds_dataitem(node, param, value):
                inputs[param] = self.params[value.name]  # a URL input (see ._urlinputs)
                hashes[param] = url_version(inputs[param])
            elif isinstance(value, (OutputRef, PipelineParam)):
                params[param] = self.value_of(value)
                if isinstance(value, OutputRef):
                    run = self.runs[value.node]
                    best = run.status.results.get("best_iteration", run.metadata.iteration)
                    rows += [self._row(run, best, value.key, fp) for fp in fed]
            else:
                params[param] = value
        return params, inputs, hashes, rows

    def items_of(self, ref: OutputRef) -> list[dict[str, Any]]:
        """Return the item runs (as dicts) of mapped step ``ref.node``, in item order.

        Only the items that ran: one its condition skipped has no run.
        """
        run = self.runs[ref.node]
        source = run.metadata.labels.get(CACHED_FROM) or run.uid
        found = self.db.list_runs(uid=source, iter=True, sort=False)
        return sorted(
            (r for r in found if r["metadata"].get("iteration", 0) > 0),
            key=lambda r: r["metadata"]["iteration"],
        )

    def _collect(
        self,
        ref: OutputRef,
        param: str,
        params: dict,
        inputs: dict,
        hashes: dict,
        rows: list,
        fed: tuple[str, ...] = (),
        keys: dict[str, str] | None = None,
    ) -> None:
        run = self.runs[ref.node]
        values, digests = [], []
        for i, item in enumerate(self.items_of(ref)):
            it, status = item["metadata"]["iteration"], item.get("status", {})
            if ref.kind == "result" and not ref.key:  # collect(node.results): each item's dict
                values.append(dict(status.get("results", {})))
                rows += [self._row(run, it, (keys or {}).get(fp, ""), fp) for fp in fed]
            elif ref.kind == "result":
                if ref.key not in status.get("results", {}):
                    raise InputError(
                        f"item {it} of mapped step {ref.node!r} logged no result {ref.key!r}"
                    )
                values.append(status["results"][ref.key])
                rows += [self._row(run, it, ref.key, fp) for fp in fed or (param,)]
            else:
                art = _artifact_in(status.get("artifacts", []), ref.key, f"{ref.node}#{it}")
                values.append(art["uri"])
                digests.append(art.get("hash") or art["uri"])
                inputs[f"{param}[{i}]"] = art["uri"]
                self.records[art["uri"]] = art
                rows.append(self._row(run, it, ref.key, param, art))
        params[param] = values
        if ref.kind == "artifact":
            hashes[param] = digests

    def _row(
        self,
        producer: RunObject,
        iteration: int,
        output: str,
        param: str,
        art: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "project": self.project,
            "pipeline_uid": self.pipeline_uid,
            "producer_uid": producer.uid,
            "producer_iter": iteration,
            "output": output,
            "artifact_key": art.get("key", "") if art else "",
            "artifact_uri": art.get("uri", "") if art else "",
            "artifact_hash": (art.get("hash") or "") if art else "",
            "consumer_param": param,
        }


def _artifact(run: RunObject, key: str, node: str) -> dict[str, Any]:
    return _artifact_in(run.status.artifacts, key, node)


def _artifact_in(artifacts: list[dict[str, Any]], key: str, where: str) -> dict[str, Any]:
    for art in artifacts:
        if art.get("key") == key:
            return art
    raise InputError(
        f"step {where!r} has no artifact {key!r} to pass on (artifacts: "
        f"{[a.get('key') for a in artifacts]})"
    )


def _feeds_dataitem(node: Node, param: str, value: PipelineParam) -> bool:
    """Tell whether a URL input (a ``DataItem`` pipeline parameter) feeds a ``DataItem``."""
    if not is_url_param(value):
        return False
    spec = next((p for p in getattr(node.spec, "params", ()) if p.name == param), None)
    return spec is not None and spec.dataitem
