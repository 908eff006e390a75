"""The web UI: server-rendered pages (Jinja2) with one small script, inline SVG, no CDN.

Pages: runs table (filters, sort, paging), run page (params, results, labels, timings, log that
follows a running run, artifact previews, metric charts), hyper-parameter page (iteration table,
best highlighted, scatter of a param against a result), pipeline page (the DAG), artifact lineage
(upstream and downstream), and a side-by-side comparison of runs.
"""

from __future__ import annotations

import hmac
import os
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ..errors import NotFoundError
from ._middleware import COOKIE

HERE = os.path.dirname(__file__)
PAGE_SIZE = 50
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
    return env


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
    from ._query import page_runs

    labels = [x.strip() for x in label.split(",") if x.strip()] or None
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
    pages = max(1, -(-total // PAGE_SIZE))
    return _render(
        request,
        "runs.html",
        runs=runs,
        total=total,
        page=page,
        pages=pages,
        f={"project": project, "name": name, "label": label, "state": state},
        sort=sort,
        order=order,
        qs=lambda **kw: _qs(request, **kw),
    )


@router.get("/runs/{uid}", response_class=HTMLResponse)
def run_page(
    request: Request,
    uid: str,
    project: str = "",
    iter: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> HTMLResponse:
    """One run: params, results, labels, timings, log, artifacts, metrics."""
    from ._graph import duration_seconds
    from ._views import artifact_preview, metric_charts

    db, root = request.app.state.db, request.app.state.artifact_root
    run = db.read_run(uid, project, iter)
    project = run["metadata"].get("project", project)
    previews = [artifact_preview(a, root) for a in run.get("status", {}).get("artifacts", [])]
    charts = metric_charts(db.get_metrics(uid, None, iter, project))
    steps = db.list_runs(project=project, pipeline_uid=uid, sort=False, last=1)
    log = db.get_log(uid, project).decode("utf-8", "replace")
    return _render(
        request,
        "run.html",
        run=run,
        previews=previews,
        charts=charts,
        log=log,
        log_size=len(log.encode()),
        duration=duration_seconds(run.get("status", {})),
        is_pipeline=bool(steps),
    )


@router.get("/runs/{uid}/iterations", response_class=HTMLResponse)
def hyper_page(
    request: Request, uid: str, project: str = "", x: str = "", y: str = ""
) -> HTMLResponse:
    """Show the iteration table (best highlighted) and a param against a result."""
    from ._views import scatter_svg

    run = request.app.state.db.read_run(uid, project)
    table = run.get("status", {}).get("iterations") or []
    header, rows = (table[0], table[1:]) if table else ([], [])
    best = run.get("status", {}).get("results", {}).get("best_iteration")
    params = [h for h in header if str(h).startswith("param.")]
    outputs = [h for h in header if str(h).startswith("output.")]
    x = x if x in params else (params[0] if params else "")
    y = y if y in outputs else (outputs[0] if outputs else "")
    points = []
    if x and y:
        xi, yi = header.index(x), header.index(y)
        for row in rows:
            try:
                points.append((float(row[xi]), float(row[yi]), int(row[0])))
            except (TypeError, ValueError):
                continue
    svg = scatter_svg(points, best, x, y)
    return _render(
        request,
        "hyper.html",
        run=run,
        header=header,
        rows=rows,
        best=best,
        params=params,
        outputs=outputs,
        x=x,
        y=y,
        svg=svg,
    )


@router.get("/pipelines/{uid}", response_class=HTMLResponse)
def pipeline_page(request: Request, uid: str, project: str = "") -> HTMLResponse:
    """Draw a pipeline run's DAG: steps by state and duration, edges by artifact."""
    from ._graph import pipeline_graph
    from ._views import dag_svg

    graph = pipeline_graph(request.app.state.db, uid, project)
    return _render(request, "pipeline.html", uid=uid, graph=graph, svg=dag_svg(graph))


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
    """Two or more runs side by side; rows whose values differ are marked."""
    db = request.app.state.db
    runs = [db.read_run(u, project) for u in (uid or [])]
    sections = []
    for title, get in (
        ("params", lambda r: r.get("spec", {}).get("params", {})),
        ("results", lambda r: r.get("status", {}).get("results", {})),
        ("labels", lambda r: r["metadata"].get("labels", {})),
    ):
        keys = sorted({k for r in runs for k in get(r)})
        rows = [(k, [get(r).get(k) for r in runs]) for k in keys]
        sections.append((title, [(k, vals, len({repr(v) for v in vals}) > 1) for k, vals in rows]))
    return _render(request, "compare.html", runs=runs, sections=sections)


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
