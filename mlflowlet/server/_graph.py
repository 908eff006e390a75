"""A pipeline run's DAG from the run DB: step runs as nodes, lineage edges between them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError

if TYPE_CHECKING:
    from ..db.base import RunDB


def duration_seconds(status: dict[str, Any]) -> float | None:
    """Return ``end_time - start_time`` in seconds, or None when either is missing."""
    try:
        start = datetime.fromisoformat(status["start_time"])
        end = datetime.fromisoformat(status["end_time"])
    except (KeyError, TypeError, ValueError):
        return None
    return max((end - start).total_seconds(), 0.0)


def pipeline_graph(db: RunDB, uid: str, project: str = "") -> dict[str, Any]:
    """Return ``{"pipeline", "nodes", "edges"}`` for the pipeline run ``uid``.

    Nodes are the step runs whose ``spec.pipeline_uid`` is ``uid`` (not a map item's failed
    attempt kept as a run of its own, annotation ``item_uid``: an item is no node either); edges
    come from the lineage rows of the pipeline (producer run to consumer run, labelled with the
    output, artifact key and consumer parameter).

    Raises:
        NotFoundError: neither a run ``uid`` nor any step of such a pipeline exists.
    """
    steps = [
        r
        for r in db.list_runs(project=project, pipeline_uid=uid, iter=False, sort=False)
        if r["metadata"].get("uid") != uid
        and "item_uid" not in (r["metadata"].get("annotations") or {})
    ]
    try:
        pipeline: dict[str, Any] | None = db.read_run(uid, project)
    except NotFoundError:
        pipeline = None
    if pipeline is None and not steps:
        raise NotFoundError(f"pipeline run {uid} not found")
    steps.sort(key=lambda r: (r.get("status", {}).get("start_time") or "", r["metadata"]["name"]))
    nodes = []
    for run in steps:
        meta, status = run["metadata"], run.get("status", {})
        nodes.append(
            {
                "uid": meta["uid"],
                "name": meta.get("name", ""),
                "project": meta.get("project", ""),
                "state": status.get("state", ""),
                "start_time": status.get("start_time", ""),
                "duration": duration_seconds(status),
            }
        )
    known = {n["uid"] for n in nodes}
    edges = []
    for edge in db.list_lineage(pipeline_uid=uid):
        src, dst = edge.get("producer_uid"), edge.get("consumer_uid")
        if src in known and dst in known:
            edges.append(
                {
                    "source": src,
                    "target": dst,
                    "output": edge.get("output") or "",
                    "artifact_key": edge.get("artifact_key") or "",
                    "param": edge.get("consumer_param") or "",
                }
            )
    return {"pipeline": pipeline, "nodes": nodes, "edges": edges}
