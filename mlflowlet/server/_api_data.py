"""REST endpoints for what runs produce: logs, metrics, lineage, pipeline graphs and files."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ._jsonroute import TaggedJSONRoute
from ._schemas import (
    PAGE_DEFAULT,
    Edges,
    LineageEdges,
    MetricRows,
    Metrics,
    PipelineGraph,
    statuses,
)
from .api import Iter, Key, Limit, Offset, Project, Text, Uid, json_answer, paged

router = APIRouter(prefix="/api/v1", route_class=TaggedJSONRoute)  # NaN tags (db/_json.py)

_RAW_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
_BYTES = {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
}


# logs and metrics -------------------------------------------------------------------------------
@router.post(
    "/logs/{uid}", status_code=204, tags=["logs"], summary="store_log", openapi_extra=_RAW_BODY,
    responses=statuses(body=True),
)  # fmt: skip
async def store_log(
    request: Request, uid: Uid, project: Project = "", append: bool = True
) -> Response:
    """Append the raw request body to the run's log (or replace it with ``append=false``)."""
    body = await request.body()
    await run_in_threadpool(request.app.state.db.store_log, uid, project, body, append)
    return Response(status_code=204)


@router.get(
    "/logs/{uid}", tags=["logs"], summary="get_log", response_class=Response,
    responses={200: {"description": "the log bytes", **_BYTES}, **statuses()},
)  # fmt: skip
def get_log(
    request: Request,
    uid: Uid,
    project: Project = "",
    offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
    size: Annotated[int, Query(ge=0, le=2**53)] = 0,
) -> Response:
    """Return the log bytes from ``offset`` (``size`` 0: to the end)."""
    data = request.app.state.db.get_log(uid, project, offset, size)
    return Response(data, media_type="application/octet-stream")


@router.post(
    "/metrics/{uid}", status_code=204, tags=["metrics"], summary="store_metrics",
    responses=statuses(body=True),
)  # fmt: skip
def store_metrics(
    request: Request, uid: Uid, body: MetricRows, project: Project = "", iter: Iter = 0
) -> Response:
    """Append metric rows ``(key, step, value, time)``."""
    request.app.state.db.store_metrics(uid, project, iter, [tuple(r) for r in body.rows])
    return Response(status_code=204)


@router.get(
    "/metrics/{uid}", tags=["metrics"], summary="get_metrics", response_model=None,
    responses={200: {"model": Metrics, "description": "the metric rows"}, **statuses()},
)  # fmt: skip
def get_metrics(
    request: Request, uid: Uid, key: Text = "", iter: Iter = 0, project: Project = ""
) -> Response:
    """Return ``{"metrics": [{key, step, value, time}, ...]}``."""
    rows = request.app.state.db.get_metrics(uid, key or None, iter, project)
    return json_answer({"metrics": rows})


# lineage and pipelines --------------------------------------------------------------------------
@router.post(
    "/lineage", status_code=204, tags=["lineage"], summary="store_lineage",
    responses=statuses(body=True),
)  # fmt: skip
def store_lineage(request: Request, body: LineageEdges) -> Response:
    """Store lineage edges."""
    request.app.state.db.store_lineage([e.model_dump() for e in body.edges])
    return Response(status_code=204)


@router.get(
    "/lineage", tags=["lineage"], summary="list_lineage", response_model=None,
    responses={200: {"model": Edges, "description": "the edges"}, **statuses()},
)  # fmt: skip
def list_lineage(
    request: Request,
    run_uid: Text = "",
    artifact_key: Text = "",
    pipeline_uid: Text = "",
    upstream: bool = False,
    downstream: bool = False,
    offset: Offset = 0,
    limit: Limit = PAGE_DEFAULT,
) -> Response:
    """Return one page of the edges touching a run or artifact; walk the graph when asked.

    ``{"edges": [...], "next_offset": n}`` (null on the last page).
    """
    edges = request.app.state.db.list_lineage(
        run_uid or None, artifact_key or None, pipeline_uid or None, upstream, downstream
    )
    page, next_offset = paged(edges[offset:], offset, limit, 0)
    return json_answer({"edges": page, "next_offset": next_offset})


@router.get(
    "/pipelines/{uid}/graph", tags=["lineage"], summary="pipeline graph", response_model=None,
    responses={200: {"model": PipelineGraph, "description": "the DAG"}, **statuses(404)},
)  # fmt: skip
def pipeline_graph(request: Request, uid: Uid, project: Project = "") -> Response:
    """Return a pipeline run's DAG: step runs as nodes, lineage edges between them."""
    from ._graph import pipeline_graph as build

    return json_answer(build(request.app.state.db, uid, project))


# files ------------------------------------------------------------------------------------------
_FILE: dict[int | str, dict[str, Any]] = {
    200: {"description": "the file (type and disposition by the download allow-list)", **_BYTES},
    206: {"description": "the requested range", **_BYTES},
}


@router.get(
    "/files/{path:anypath}", tags=["artifacts"], summary="download a file", response_class=Response,
    responses={**_FILE, **statuses(404, 416)},
)  # fmt: skip
def download_file(request: Request, path: Key) -> Response:
    """Stream a file under the artifact root (honours ``Range``; refuses paths leaving the root)."""
    from ._files import file_response

    return file_response(request.app.state.artifact_root, path, request.headers.get("range"))


@router.get(
    "/download", tags=["artifacts"], summary="download an artifact's file",
    response_class=Response, responses={**_FILE, **statuses(404, 416)},
)  # fmt: skip
def download_artifact(
    request: Request,
    key: Annotated[str, Query(min_length=1, max_length=1024)],
    project: Project = "",
    tag: Text = "",
    uid: Text = "",
) -> Response:
    """Stream the file of an artifact version stored under the artifact root."""
    from ..errors import DataNotFoundError
    from ._files import file_response, relative_to_root

    art = request.app.state.db.read_artifact(key, tag, None, project, uid or None)
    root = request.app.state.artifact_root
    rel = relative_to_root(root, art.get("uri") or "")
    if rel is None:
        raise DataNotFoundError(
            f"artifact {key!r} is stored at {art.get('uri')!r}, outside the server's artifact "
            "root; read it from there"
        )
    return file_response(root, rel, request.headers.get("range"))
