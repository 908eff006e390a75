"""REST endpoints (``/api/v1``) covering the whole :class:`~mlflowlet.db.base.RunDB` interface.

Every endpoint maps onto one run DB method; :class:`mlflowlet.db.http.HTTPRunDB` is its client.
Request bodies are validated (422/400 on bad input), integers are bounded so no input reaches
the store as something it cannot hold, and store errors map to HTTP codes in ``app.py``.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ..model import RunObject
from ._jsonroute import TaggedJSONRoute

router = APIRouter(prefix="/api/v1", route_class=TaggedJSONRoute)

MAX_INT = 2**31 - 1
Iter = Annotated[int, Query(ge=0, le=MAX_INT, description="hyper-parameter iteration")]
OptIter = Annotated[int | None, Query(ge=0, le=MAX_INT)]
Project = Annotated[str, Query(max_length=256, description="project name ('' = any)")]


class ArtifactRecord(BaseModel):
    """An artifact record as the run DB stores it (unknown fields kept)."""

    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")
    key: str | None = None
    kind: str | None = None
    uid: str | None = None
    uri: str | None = None
    hash: str | None = None
    size: int | None = Field(None, ge=0)
    format: str | None = None
    viewer: str | None = None
    labels: dict[str, str] | None = None
    tag: str | None = None
    producer: dict[str, Any] | None = None
    project: str | None = None
    tree: str | None = None
    iteration: int | None = Field(None, ge=0, le=MAX_INT)
    updated: str | None = None
    extra: dict[str, Any] | None = None


class LineageEdge(BaseModel):
    """One lineage edge: an artifact flowing from a producer run's output to a consumer param."""

    model_config = ConfigDict(extra="ignore")
    project: str | None = None
    pipeline_uid: str | None = None
    producer_uid: str | None = None
    producer_iter: int | None = Field(None, ge=0, le=MAX_INT)
    output: str | None = None
    artifact_key: str | None = None
    artifact_uri: str | None = None
    artifact_hash: str | None = None
    consumer_uid: str | None = None
    consumer_param: str | None = None
    time: str | None = None


MetricRow = tuple[
    str, Annotated[int, Field(ge=-MAX_INT, le=MAX_INT)] | None, float | None, float | None
]


class MetricRows(BaseModel):
    """Metric rows ``(key, step, value, time)``."""

    rows: list[MetricRow] = Field(default_factory=list)


class LineageEdges(BaseModel):
    """Lineage edges to store."""

    edges: list[LineageEdge] = Field(default_factory=list)


class CommitBody(BaseModel):
    """A run with its new artifacts, metric rows and log chunk (base64), written at once."""

    run: RunObject
    artifacts: list[ArtifactRecord] = Field(default_factory=list)
    metrics: list[MetricRow] = Field(default_factory=list)
    log_b64: str = ""


def _db(request: Request) -> Any:
    return request.app.state.db


def _json(data: Any) -> Response:
    """Answer JSON straight from plain data (skips FastAPI's per-field encoder: big lists)."""
    from .app import json_response_class

    return json_response_class()(data)


def _run_dict(run: RunObject, uid: str, project: str, it: int) -> dict[str, Any]:
    data = run.model_dump(mode="json")
    meta = data["metadata"]
    meta["uid"] = meta.get("uid") or uid
    meta["project"] = meta.get("project") or project
    meta["iteration"] = it
    return data


def _art_dict(art: ArtifactRecord) -> dict[str, Any]:
    return art.model_dump(mode="json", exclude_unset=True)


# runs -------------------------------------------------------------------------------------------
@router.put("/runs/{uid}", status_code=204, tags=["runs"], summary="store_run")
def store_run(
    request: Request, uid: str, run: RunObject, project: Project = "", iter: Iter = 0
) -> Response:
    """Insert or replace a run."""
    _db(request).store_run(_run_dict(run, uid, project, iter), uid, project, iter)
    return Response(status_code=204)


@router.get("/runs/{uid}", tags=["runs"], summary="read_run")
def read_run(request: Request, uid: str, project: Project = "", iter: Iter = 0):
    """Return a run (404 when unknown)."""
    return _json(_db(request).read_run(uid, project, iter))


@router.patch("/runs/{uid}", status_code=204, tags=["runs"], summary="update_run")
def update_run(
    request: Request,
    uid: str,
    updates: Annotated[dict[str, Any], Body(description="dotted keys to values")],
    project: Project = "",
    iter: Iter = 0,
) -> Response:
    """Apply dotted-key updates (``{"status.state": "error"}``) to a stored run."""
    from ..errors import ConfigError

    for key in updates:
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"update key {key!r} is not a dotted path like 'status.state'")
    db = _db(request)
    run = db.read_run(uid, project, iter)
    for key in updates:
        target: Any = run
        for part in key.split(".")[:-1]:
            if not isinstance(target.get(part, {}), dict):
                raise ConfigError(f"update key {key!r}: {part!r} is not an object in the run")
            target = target.setdefault(part, {})
    db.update_run(updates, uid, project, iter)
    return Response(status_code=204)


@router.delete("/runs/{uid}", status_code=204, tags=["runs"], summary="del_run")
def del_run(request: Request, uid: str, project: Project = "", iter: OptIter = None) -> Response:
    """Delete a run (every iteration unless ``iter`` is given)."""
    _db(request).del_run(uid, project, iter)
    return Response(status_code=204)


@router.get("/runs", tags=["runs"], summary="list_runs")
def list_runs(
    request: Request,
    name: str = "",
    uid: str | None = None,
    project: Project = "",
    label: Annotated[list[str] | None, Query(description="k=v, k!=v, k~=v or k")] = None,
    state: str = "",
    sort: bool = True,
    last: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    iter: bool = False,
    parent_uid: str = "",
    pipeline_uid: str = "",
):
    """Return ``{"runs": [...]}`` matching every filter given (newest first with ``sort``)."""
    filters = {k: v for k, v in (("parent_uid", parent_uid), ("pipeline_uid", pipeline_uid)) if v}
    runs = _db(request).list_runs(name, uid, project, label, state, sort, last, iter, **filters)
    return _json({"runs": list(runs)})


@router.delete("/runs", tags=["runs"], summary="del_runs")
def del_runs(
    request: Request,
    name: str = "",
    project: Project = "",
    label: Annotated[list[str] | None, Query()] = None,
    state: str = "",
    days_ago: Annotated[int, Query(ge=0, le=100000)] = 0,
):
    """Delete the runs matching the filter (400 for an empty filter); returns the count."""
    return {"deleted": _db(request).del_runs(name, project, label, state, days_ago)}


@router.post("/runs/{uid}/commit", status_code=204, tags=["runs"], summary="commit_run")
def commit_run(request: Request, uid: str, body: CommitBody) -> Response:
    """Write a run with its new artifacts, metric rows and log chunk in one call."""
    from ..errors import ConfigError

    meta = body.run.metadata
    try:
        log = base64.b64decode(body.log_b64, validate=True) if body.log_b64 else b""
    except ValueError:
        raise ConfigError("commit body: log_b64 is not valid base64") from None
    run = _run_dict(body.run, uid, meta.project, meta.iteration)
    _db(request).commit_run(
        run, [_art_dict(a) for a in body.artifacts if a.key], [tuple(r) for r in body.metrics], log
    )
    return Response(status_code=204)


# artifacts --------------------------------------------------------------------------------------
@router.get("/artifacts", tags=["artifacts"], summary="list_artifacts")
def list_artifacts(
    request: Request,
    name: str = "",
    project: Project = "",
    tag: str = "",
    label: Annotated[list[str] | None, Query()] = None,
    kind: str | None = None,
    since: str | None = None,
    until: str | None = None,
    tree: str | None = None,
    iter: int | None = None,
):
    """Return ``{"artifacts": [...]}``: latest versions, ``tag="*"`` all, else that tag."""
    arts = _db(request).list_artifacts(name, project, tag, label, kind, since, until, tree, iter)
    return _json({"artifacts": list(arts)})


@router.delete("/artifacts", tags=["artifacts"], summary="del_artifacts")
def del_artifacts(
    request: Request,
    name: str = "",
    project: Project = "",
    tag: str = "",
    label: Annotated[list[str] | None, Query()] = None,
):
    """Delete the artifacts matching the filter (400 for an empty filter); returns the count."""
    return {"deleted": _db(request).del_artifacts(name, project, tag, label)}


@router.get("/artifact-tags", tags=["artifacts"], summary="list_artifact_tags")
def list_artifact_tags(request: Request, project: Project = ""):
    """Return ``{"tags": [...]}``."""
    return {"tags": _db(request).list_artifact_tags(project)}


@router.put("/artifacts/{key:path}", status_code=204, tags=["artifacts"], summary="store_artifact")
def store_artifact(
    request: Request,
    key: str,
    artifact: ArtifactRecord,
    uid: str | None = None,
    iter: OptIter = None,
    tag: str = "",
    project: Project = "",
    tree: str = "",
) -> Response:
    """Store an artifact version and move ``latest`` (and ``tag``) to it."""
    from ..artifacts._keys import validate_key

    validate_key(key)
    _db(request).store_artifact(key, _art_dict(artifact), uid, iter, tag, project, tree)
    return Response(status_code=204)


@router.get("/artifacts/{key:path}", tags=["artifacts"], summary="read_artifact")
def read_artifact(
    request: Request,
    key: str,
    tag: str = "",
    iter: OptIter = None,
    project: Project = "",
    uid: str | None = None,
):
    """Return an artifact version by tag (default ``latest``) or uid (404 when unknown)."""
    return _db(request).read_artifact(key, tag, iter, project, uid)


@router.delete("/artifacts/{key:path}", tags=["artifacts"], summary="del_artifact")
def del_artifact(
    request: Request,
    key: str,
    tag: str = "",
    project: Project = "",
    uid: str | None = None,
    iter: int | None = None,
):
    """Delete one version (by tag or uid) or every version of ``key``; returns the count."""
    return {"deleted": _db(request).del_artifact(key, tag, project, uid, iter)}


# logs and metrics -------------------------------------------------------------------------------
_RAW_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "/logs/{uid}", status_code=204, tags=["logs"], summary="store_log", openapi_extra=_RAW_BODY
)
async def store_log(
    request: Request, uid: str, project: Project = "", append: bool = True
) -> Response:
    """Append the raw request body to the run's log (or replace it with ``append=false``)."""
    body = await request.body()
    await run_in_threadpool(_db(request).store_log, uid, project, body, append)
    return Response(status_code=204)


@router.get(
    "/logs/{uid}",
    tags=["logs"],
    summary="get_log",
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_log(
    request: Request,
    uid: str,
    project: Project = "",
    offset: Annotated[int, Query(ge=0)] = 0,
    size: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Return the log bytes from ``offset`` (``size`` 0: to the end)."""
    data = _db(request).get_log(uid, project, offset, size)
    return Response(data, media_type="application/octet-stream")


@router.post("/metrics/{uid}", status_code=204, tags=["metrics"], summary="store_metrics")
def store_metrics(
    request: Request, uid: str, body: MetricRows, project: Project = "", iter: Iter = 0
) -> Response:
    """Append metric rows ``(key, step, value, time)``."""
    _db(request).store_metrics(uid, project, iter, [tuple(r) for r in body.rows])
    return Response(status_code=204)


@router.get("/metrics/{uid}", tags=["metrics"], summary="get_metrics")
def get_metrics(
    request: Request, uid: str, key: str | None = None, iter: Iter = 0, project: Project = ""
):
    """Return ``{"metrics": [{key, step, value, time}, ...]}``."""
    return {"metrics": _db(request).get_metrics(uid, key, iter, project)}


# lineage and pipelines --------------------------------------------------------------------------
@router.post("/lineage", status_code=204, tags=["lineage"], summary="store_lineage")
def store_lineage(request: Request, body: LineageEdges) -> Response:
    """Store lineage edges."""
    _db(request).store_lineage([e.model_dump() for e in body.edges])
    return Response(status_code=204)


@router.get("/lineage", tags=["lineage"], summary="list_lineage")
def list_lineage(
    request: Request,
    run_uid: str | None = None,
    artifact_key: str | None = None,
    pipeline_uid: str | None = None,
    upstream: bool = False,
    downstream: bool = False,
):
    """Return ``{"edges": [...]}`` touching a run or artifact; walk the graph when asked."""
    edges = _db(request).list_lineage(run_uid, artifact_key, pipeline_uid, upstream, downstream)
    return {"edges": edges}


@router.get("/pipelines/{uid}/graph", tags=["lineage"], summary="pipeline graph")
def pipeline_graph(request: Request, uid: str, project: Project = ""):
    """Return a pipeline run's DAG: step runs as nodes, lineage edges between them."""
    from ._graph import pipeline_graph as build

    return build(_db(request), uid, project)


# files ------------------------------------------------------------------------------------------
@router.get(
    "/files/{path:path}",
    tags=["artifacts"],
    summary="download a file",
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {}, 416: {}},
)
def download_file(request: Request, path: str) -> Response:
    """Stream a file under the artifact root (honours ``Range``; refuses paths leaving the root)."""
    from ._files import file_response

    return file_response(request.app.state.artifact_root, path, request.headers.get("range"))


@router.get("/download", tags=["artifacts"], summary="download an artifact's file")
def download_artifact(
    request: Request, key: str, project: Project = "", tag: str = "", uid: str | None = None
) -> Response:
    """Stream the file of an artifact version stored under the artifact root."""
    from ..errors import DataNotFoundError
    from ._files import file_response, relative_to_root

    art = _db(request).read_artifact(key, tag, None, project, uid)
    root = request.app.state.artifact_root
    rel = relative_to_root(root, art.get("uri") or "")
    if rel is None:
        raise DataNotFoundError(
            f"artifact {key!r} is stored at {art.get('uri')!r}, outside the server's artifact "
            "root; read it from there"
        )
    return file_response(root, rel, request.headers.get("range"))
