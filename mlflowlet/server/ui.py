"""The web UI: server-rendered pages (Jinja2) with one small script, inline SVG, no CDN.

Pages: runs table (filters, sort, paging), run page (params, results, labels, timings, metric
charts, artifact previews, a log that follows a running run), sweep page (one page of iterations,
best highlighted, scatter and parallel coordinates), pipeline page (the DAG, updating live, and
the pipeline's log), artifact lineage (upstream and downstream), and a comparison of runs
(overlaid metric charts, differences marked). Every list is paged; every page is under the
strict CSP of ``_security.py`` (no inline script).
"""

from __future__ import annotations

import hmac
import json
import os
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ..errors import NotFoundError
from ._middleware import COOKIE
from ._views import split_labels

if TYPE_CHECKING:
    from ..db.base import RunDB

HERE = os.path.dirname(__file__)
PAGE_SIZE = 50
COMPARE_MAX = 10
router = APIRouter(include_in_schema=False)


def _templates() -> Any:
    try:
        from jinja2 import Environment, FileSystemLoader, select_autoescape
    except ImportError:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("jinja2", "server") from None
    env = Environment(
        loader=FileSystemLoader(os.path.join(HERE, "templates")),
        autoescape=select_autoescape(["html"]),
    )
    env.filters["short"] = lambda t, n=19: str(t or "")[:n]
    env.filters["text"] = _text
    env.filters["user_labels"] = lambda labels: split_labels(labels)[0]
    env.filters["internal_labels"] = lambda labels: split_labels(labels)[1]
    return env


def _text(value: Any) -> str:
    """Return a value as the page shows it (JSON for containers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def _render(request: Request, name: str, **ctx: Any) -> HTMLResponse:
    env = request.app.state.templates
    return HTMLResponse(env.get_template(name).render(request=request, **ctx))


def _qs(request: Request, **changes: Any) -> str:
    params = dict(request.query_params)
    params.update({k: v for k, v in changes.items()})
    return "?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})


@router.get("/", response_class=HTMLResponse)
def runs_page(
    request: Request,
    project: str = "",
    name: str = "",
    label: str = "",
    state: str = "",
    sort: str = "start",
    order: str = "desc",
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
) -> HTMLResponse:
    """Show the runs table."""
    from ..errors import ConfigError
    from ._query import page_runs

    labels = [x.strip() for x in label.split(",") if x.strip()] or None
    problem = ""
    try:
        runs, total = page_runs(
            request.app.state.db,
            project,
            name,
            labels,
            state,
            sort,
            order != "asc",
            (page - 1) * PAGE_SIZE,
            PAGE_SIZE,
        )
    except ConfigError as exc:  # a filter the store refuses: say so on the page
        runs, total, problem = [], 0, str(exc)
    pages = max(1, -(-total // PAGE_SIZE))
    return _render(
        request,
        "runs.html",
        problem=problem,
        runs=runs,
        total=total,
        page=page,
        pages=pages,
        f={"project": project, "name": name, "label": label, "state": state},
        sort=sort,
        order=order,
        qs=lambda **kw: _qs(request, **kw),
    )


LOG_TAIL = 256 * 1024


@router.get("/runs/{uid}", response_class=HTMLResponse)
def run_page(
    request: Request,
    uid: str,
    project: str = "",
    iter: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> HTMLResponse:
    """One run: params, results, labels, timings, metric charts, artifacts, log."""
    from ._charts import metric_charts
    from ._graph import duration_seconds
    from ._query import light_run, metric_series
    from ._views import artifact_preview

    db, root = request.app.state.db, request.app.state.artifact_root
    run, table_rows = light_run(db, uid, project, iter)
    project = run["metadata"].get("project", project)
    status = run.get("status", {})
    previews = [artifact_preview(a, root) for a in status.get("artifacts", [])]
    log = db.get_log(uid, project)
    user, internal = split_labels(run["metadata"].get("labels"))
    return _render(
        request,
        "run.html",
        run=run,
        iterations=max(table_rows - 1, 0),
        previews=previews,
        charts=metric_charts(metric_series(db, uid, iter)),
        log=log[-LOG_TAIL:].decode("utf-8", "replace"),
        log_cut=max(len(log) - LOG_TAIL, 0),
        log_size=len(log),
        duration=duration_seconds(status),
        is_pipeline=_is_pipeline(db, run),
        user_labels=user,
        internal_labels=internal,
        file_url=lambda uri: _file_url(root, uri),
    )


def _is_pipeline(db: RunDB, run: dict[str, Any]) -> bool:
    """Return True for a pipeline run: it has a graph, says so, or runs name it their pipeline."""
    meta = run["metadata"]
    if run.get("spec", {}).get("graph") or meta.get("labels", {}).get("kind") == "pipeline":
        return True
    if meta.get("iteration"):
        return False
    steps = db.list_runs(  # unsorted: a sorted probe would walk every run by start time
        project=meta.get("project", ""), pipeline_uid=meta["uid"], last=2, sort=False
    )
    return any(s["metadata"]["uid"] != meta["uid"] for s in steps)


def _file_url(root: str, uri: Any) -> str | None:
    from ._views import file_url

    return file_url(root, uri) if isinstance(uri, str) else None


@router.get("/runs/{uid}/iterations", response_class=HTMLResponse)
def hyper_page(
    request: Request,
    uid: str,
    project: str = "",
    x: str = "",
    y: str = "",
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
) -> HTMLResponse:
    """Show a sweep: a page of iterations (best marked), scatter and parallel coordinates."""
    from ._sweep import sweep_view

    view = sweep_view(request.app.state.db, uid, project, page, x, y)
    return _render(request, "hyper.html", page=page, qs=lambda **kw: _qs(request, **kw), **view)


@router.get("/pipelines/{uid}", response_class=HTMLResponse)
def pipeline_page(request: Request, uid: str, project: str = "") -> HTMLResponse:
    """Show a pipeline run live: steps by state and duration, conditions, maps, its log."""
    from ._live import dag_svg, live_graph

    db = request.app.state.db
    graph = live_graph(db, uid, project)
    log = db.get_log(uid, project) if graph["pipeline"] else b""
    return _render(
        request,
        "pipeline.html",
        uid=uid,
        graph=graph,
        svg=dag_svg(graph),
        log=log[-LOG_TAIL:].decode("utf-8", "replace"),
        log_size=len(log),
    )


@router.get("/pipelines/{uid}/live.json")
def pipeline_live(request: Request, uid: str, project: str = "") -> Response:
    """Return what the live pipeline page polls: the run's and each step's state, duration."""
    from ._live import live_graph, live_state

    return JSONResponse(live_state(live_graph(request.app.state.db, uid, project)))


@router.get("/lineage", response_class=HTMLResponse)
def lineage_page(request: Request, key: str, project: str = "") -> HTMLResponse:
    """Show an artifact's lineage: the runs upstream and downstream of it."""
    db = request.app.state.db
    direct = db.list_lineage(artifact_key=key)
    up = db.list_lineage(artifact_key=key, upstream=True)
    down = db.list_lineage(artifact_key=key, downstream=True)
    try:
        art = db.read_artifact(key, project=project)
    except NotFoundError:
        art = None
    return _render(request, "lineage.html", key=key, art=art, direct=direct, up=up, down=down)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request, uid: Annotated[list[str] | None, Query()] = None, project: str = ""
) -> HTMLResponse:
    """Compare runs: overlaid metric charts; params, results, labels with differences marked."""
    from ._charts import overlay_charts
    from ._query import light_run, metric_series

    db = request.app.state.db
    runs = [light_run(db, u, project)[0] for u in (uid or [])[:COMPARE_MAX]]
    names = [f"{r['metadata'].get('name', '')} {r['metadata']['uid'][:6]}" for r in runs]
    charts = overlay_charts(
        [(n, metric_series(db, r["metadata"]["uid"])) for n, r in zip(names, runs, strict=True)]
    )
    sections = []
    for title, get in (
        ("params", lambda r: r.get("spec", {}).get("params", {})),
        ("results", lambda r: r.get("status", {}).get("results", {})),
        ("labels", lambda r: r["metadata"].get("labels", {})),
    ):
        keys = sorted({k for r in runs for k in get(r)})
        rows = []
        for k in keys:
            vals = [get(r).get(k) for r in runs]
            rows.append((k, vals, odd_ones(vals)))
        sections.append((title, rows))
    return _render(request, "compare.html", runs=runs, sections=sections, charts=charts)


def odd_ones(values: list[Any]) -> list[bool]:
    """Mark the values that differ from the most common one (all of them when none repeats)."""
    shown = [json.dumps(v, sort_keys=True, default=str) for v in values]
    if len(set(shown)) <= 1:
        return [False] * len(shown)
    common = max(set(shown), key=shown.count)
    if shown.count(common) == 1:
        return [True] * len(shown)
    return [v != common for v in shown]


@router.post("/login")
async def login(request: Request) -> Response:
    """Check a token from the login form and keep it in an HttpOnly cookie."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = (form.get("token") or [""])[0].encode()
    target = request.query_params.get("next", "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    if not hmac.compare_digest(given, request.app.state.ui_token.encode()):
        return HTMLResponse("<p>Wrong token. <a href='/'>Try again</a></p>", status_code=401)
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(COOKIE, given.decode(), httponly=True, samesite="strict")
    return resp


def mount_ui(app: FastAPI, token: str) -> None:
    """Add the UI pages, the login form and ``/static`` to ``app``."""
    app.state.templates = _templates()
    app.state.ui_token = token
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError) -> Response:
        if request.url.path.startswith("/api/"):
            from fastapi.responses import JSONResponse

            return JSONResponse({"detail": str(exc)}, status_code=404)
        page = request.app.state.templates.get_template("error.html")
        return HTMLResponse(page.render(request=request, message=str(exc)), status_code=404)
