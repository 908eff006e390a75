"""REST endpoints (``/api/v1``) covering the whole :class:`~mlflowlet.db.base.RunDB` interface.

Every endpoint maps onto one run DB method; :class:`mlflowlet.db.http.HTTPRunDB` is its client.
Request bodies validate strictly (422 on a field of the wrong type), integers are bounded so no
input reaches the store as something it cannot hold, list endpoints page (``offset``/``limit``,
100 by default), each route documents every status it returns (``_schemas.statuses``), and
store errors map to HTTP codes in ``app.py``. Logs, metrics, lineage and files are in
``_api_data.py``.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import Response
from starlette.convertors import PathConvertor, register_url_convertor

from ..artifacts._keys import MAX_NAME_BYTES
from ._jsonroute import TaggedJSONRoute
from ._schemas import (
    ARTIFACT_KEY,
    LABEL_FILTER,
    MAX_FILTERS,
    MAX_INT,
    PAGE_DEFAULT,
    PAGE_MAX,
    ArtifactRecord,
    ArtifactsPage,
    CommitBody,
    Deleted,
    RunBody,
    RunsPage,
    State,
    Tags,
    Updates,
    statuses,
)

router = APIRouter(prefix="/api/v1", route_class=TaggedJSONRoute)  # NaN tags (db/_json.py)


class _AnyPath(PathConvertor):
    """``{key:anypath}``: like ``path`` but newlines too, so a bad key is a 422, not a 404."""

    regex = "[\\s\\S]*"


register_url_convertor("anypath", _AnyPath())

Iter = Annotated[int, Query(ge=0, le=MAX_INT, description="hyper-parameter iteration")]
OptIter = Annotated[int | None, Query(ge=0, le=MAX_INT, description="one iteration (default all)")]
Project = Annotated[str, Query(max_length=256, description="project name ('' = any)")]
Text = Annotated[str, Query(max_length=1024)]
Labels = Annotated[
    list[Annotated[str, Query(min_length=1, max_length=1024, pattern=LABEL_FILTER)]],
    Query(max_length=MAX_FILTERS, description=f"k=v, k!=v, k~=v or k (at most {MAX_FILTERS})"),
]
StateFilter = Literal["", State]
Uid = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[^/\x00-\x1f]+$")]
Key = Annotated[str, Path(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f]+$")]
#: a key over MAX_NAME_BYTES UTF-8 bytes is a 400 (JSON Schema counts characters, not bytes)
NewKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_NAME_BYTES,
        pattern=ARTIFACT_KEY,
        description=f"one file name of at most {MAX_NAME_BYTES} UTF-8 bytes (a longer one is 400)",
    ),
]
Offset = Annotated[int, Query(ge=0, le=MAX_INT, description="matches to skip (paging)")]
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description="page size")]


def _db(request: Request) -> Any:
    return request.app.state.db


def json_answer(data: Any) -> Response:
    """Answer JSON straight from plain data (skips FastAPI's per-field encoder: big lists)."""
    from .app import json_response_class

    return json_response_class()(data)


def _run_dict(run: RunBody, uid: str, project: str, it: int) -> dict[str, Any]:
    data = run.model_dump(mode="json")
    meta = data["metadata"]
    meta["uid"] = meta.get("uid") or uid
    meta["project"] = meta.get("project") or project
    meta["iteration"] = it
    return data


def _art_dict(art: ArtifactRecord) -> dict[str, Any]:
    return art.model_dump(mode="json", exclude_unset=True)


def page_window(offset: int, limit: int, last: int) -> tuple[int, int]:
    """Return ``(rows to return, rows to fetch)`` for a page, ``last`` capping the whole list."""
    stop = min(offset + limit, last) if last else offset + limit
    want = max(stop - offset, 0)
    return want, want + 1  # one more tells whether another page follows


def paged(rows: list, offset: int, want: int, last: int) -> tuple[list, int | None]:
    """Cut a fetched page to ``want`` rows and say where the next page starts (None: done)."""
    more = len(rows) > want and (not last or offset + want < last)
    return rows[:want], (offset + want if more else None)


_ONLY = {"additionalProperties": False}  # every key must match the dotted-path pattern


def _need_filter(call: str, what: str, **filters: Any) -> None:
    """Refuse (409) a bulk delete without any filter: it would empty the store."""
    from ..db.base import require_filter
    from ..errors import ConfigError, ConflictError

    try:
        require_filter(call, what, **filters)
    except ConfigError as exc:
        raise ConflictError(str(exc)) from None


# runs -------------------------------------------------------------------------------------------
@router.put(
    "/runs/{uid}", status_code=204, tags=["runs"], summary="store_run",
    responses=statuses(body=True),
)  # fmt: skip
def store_run(
    request: Request, uid: Uid, run: RunBody, project: Project = "", iter: Iter = 0
) -> Response:
    """Insert or replace a run."""
    _db(request).store_run(_run_dict(run, uid, project, iter), uid, project, iter)
    return Response(status_code=204)


@router.get(
    "/runs/{uid}", tags=["runs"], summary="read_run", response_model=None,
    responses={200: {"model": RunBody, "description": "the run"}, **statuses(404)},
)  # fmt: skip
def read_run(request: Request, uid: Uid, project: Project = "", iter: Iter = 0) -> Response:
    """Return a run (404 when unknown)."""
    return json_answer(_db(request).read_run(uid, project, iter))


@router.patch(
    "/runs/{uid}", status_code=204, tags=["runs"], summary="update_run",
    responses=statuses(404, 409, body=True),
)  # fmt: skip
def update_run(
    request: Request,
    uid: Uid,
    updates: Annotated[
        Updates,
        Body(
            description="dotted keys to values", json_schema_extra={"additionalProperties": False}
        ),
    ],
    project: Project = "",
    iter: Iter = 0,
) -> Response:
    """Apply dotted-key updates (``{"status.state": "error"}``) to a stored run.

    409 when a key goes through a value that is not an object in the stored run.
    """
    from ..errors import ConflictError

    db = _db(request)
    run = db.read_run(uid, project, iter)
    for key in updates:
        target: Any = run
        for part in key.split(".")[:-1]:
            if not isinstance(target.get(part, {}), dict):
                raise ConflictError(f"update key {key!r}: {part!r} is not an object in the run")
            target = target.setdefault(part, {})
    db.update_run(updates, uid, project, iter)
    return Response(status_code=204)


@router.delete(
    "/runs/{uid}", status_code=204, tags=["runs"], summary="del_run", responses=statuses()
)
def del_run(request: Request, uid: Uid, project: Project = "", iter: OptIter = None) -> Response:
    """Delete a run (every iteration unless ``iter`` is given)."""
    _db(request).del_run(uid, project, iter)
    return Response(status_code=204)


@router.get(
    "/runs", tags=["runs"], summary="list_runs", response_model=None,
    responses={200: {"model": RunsPage, "description": "one page of runs"}, **statuses()},
)  # fmt: skip
def list_runs(
    request: Request,
    name: Text = "",
    uid: Text = "",
    project: Project = "",
    label: Labels = [],  # noqa: B006 - FastAPI copies defaults
    state: StateFilter = "",
    sort: bool = True,
    last: Annotated[int, Query(ge=0, le=MAX_INT, description="cap on the whole list")] = 0,
    iter: bool = False,
    parent_uid: Text = "",
    pipeline_uid: Text = "",
    offset: Offset = 0,
    limit: Limit = PAGE_DEFAULT,
) -> Response:
    """Return one page of the runs matching every filter (newest first with ``sort``).

    ``{"runs": [...], "next_offset": n}``: ask again with ``offset=n`` for the next page;
    ``next_offset`` is null on the last one.
    """
    filters = {k: v for k, v in (("parent_uid", parent_uid), ("pipeline_uid", pipeline_uid)) if v}
    want, fetch = page_window(offset, limit, last)
    rows = list(
        _db(request).list_runs(
            name, uid or None, project, label or None, state, sort, fetch, iter, offset, **filters
        )
        if want
        else []
    )
    page, next_offset = paged(rows, offset, want, last)
    return json_answer({"runs": page, "next_offset": next_offset})


@router.delete(
    "/runs", tags=["runs"], summary="del_runs", response_model=Deleted, responses=statuses(409)
)
def del_runs(
    request: Request,
    name: Text = "",
    project: Project = "",
    label: Labels = [],  # noqa: B006
    state: StateFilter = "",
    days_ago: Annotated[int, Query(ge=0, le=100000)] = 0,
) -> dict[str, int]:
    """Delete the runs matching the filter; returns the count (409 for no filter at all)."""
    _need_filter("del_runs", "run", name=name, project=project, labels=label, state=state,
                 days_ago=days_ago)  # fmt: skip
    return {"deleted": _db(request).del_runs(name, project, label or None, state, days_ago)}


@router.post(
    "/runs/{uid}/commit", status_code=204, tags=["runs"], summary="commit_run",
    responses=statuses(body=True),
)  # fmt: skip
def commit_run(request: Request, uid: Uid, body: CommitBody) -> Response:
    """Write a run with its new artifacts, metric rows and log chunk in one call."""
    meta = body.run.metadata
    log = base64.b64decode(body.log_b64) if body.log_b64 else b""  # the schema checked it
    run = _run_dict(body.run, uid, meta.project, meta.iteration)
    _db(request).commit_run(
        run, [_art_dict(a) for a in body.artifacts if a.key], [tuple(r) for r in body.metrics], log
    )
    return Response(status_code=204)


# artifacts --------------------------------------------------------------------------------------
@router.get(
    "/artifacts", tags=["artifacts"], summary="list_artifacts", response_model=None,
    responses={200: {"model": ArtifactsPage, "description": "one page"}, **statuses()},
)  # fmt: skip
def list_artifacts(
    request: Request,
    name: Text = "",
    project: Project = "",
    tag: Text = "",
    label: Labels = [],  # noqa: B006
    kind: Text = "",
    since: Text = "",
    until: Text = "",
    tree: Text = "",
    iter: OptIter = None,
    offset: Offset = 0,
    limit: Limit = PAGE_DEFAULT,
) -> Response:
    """Return one page of artifacts: latest versions, ``tag="*"`` all, else that tag.

    ``{"artifacts": [...], "next_offset": n}`` (null on the last page).
    """
    arts = _db(request).list_artifacts(
        name, project, tag, label or None, kind or None, since or None, until or None,
        tree or None, iter, offset, limit + 1,
    )  # fmt: skip
    page, next_offset = paged(list(arts), offset, limit, 0)
    return json_answer({"artifacts": page, "next_offset": next_offset})


@router.delete(
    "/artifacts", tags=["artifacts"], summary="del_artifacts", response_model=Deleted,
    responses=statuses(409),
)  # fmt: skip
def del_artifacts(
    request: Request,
    name: Text = "",
    project: Project = "",
    tag: Text = "",
    label: Labels = [],  # noqa: B006
) -> dict[str, int]:
    """Delete the artifacts matching the filter; returns the count (409 for no filter at all)."""
    _need_filter("del_artifacts", "artifact", name=name, project=project, tag=tag, labels=label)
    return {"deleted": _db(request).del_artifacts(name, project, tag, label or None)}


@router.get(
    "/artifact-tags", tags=["artifacts"], summary="list_artifact_tags", response_model=Tags,
    responses=statuses(),
)  # fmt: skip
def list_artifact_tags(request: Request, project: Project = "") -> dict[str, list[str]]:
    """Return ``{"tags": [...]}``."""
    return {"tags": _db(request).list_artifact_tags(project)}


@router.put(
    "/artifacts/{key:anypath}", status_code=204, tags=["artifacts"], summary="store_artifact",
    responses=statuses(body=True),
)  # fmt: skip
def store_artifact(
    request: Request,
    key: NewKey,
    artifact: ArtifactRecord,
    uid: Text = "",
    iter: OptIter = None,
    tag: Text = "",
    project: Project = "",
    tree: Text = "",
) -> Response:
    """Store an artifact version and move ``latest`` (and ``tag``) to it."""
    from ..artifacts._keys import validate_key

    validate_key(key)
    _db(request).store_artifact(key, _art_dict(artifact), uid or None, iter, tag, project, tree)
    return Response(status_code=204)


@router.get(
    "/artifacts/{key:anypath}", tags=["artifacts"], summary="read_artifact", response_model=None,
    responses={200: {"model": ArtifactRecord, "description": "the version"}, **statuses(404)},
)  # fmt: skip
def read_artifact(
    request: Request,
    key: Key,
    tag: Text = "",
    iter: OptIter = None,
    project: Project = "",
    uid: Text = "",
) -> Response:
    """Return an artifact version by tag (default ``latest``) or uid (404 when unknown)."""
    return json_answer(_db(request).read_artifact(key, tag, iter, project, uid or None))


@router.delete(
    "/artifacts/{key:anypath}", tags=["artifacts"], summary="del_artifact", response_model=Deleted,
    responses=statuses(404),
)  # fmt: skip
def del_artifact(
    request: Request,
    key: Key,
    tag: Text = "",
    project: Project = "",
    uid: Text = "",
    iter: OptIter = None,
) -> dict[str, int]:
    """Delete one version (by tag or uid) or every version of ``key``; returns the count."""
    return {"deleted": _db(request).del_artifact(key, tag, project, uid or None, iter)}
