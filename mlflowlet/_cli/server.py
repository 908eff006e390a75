"""``mlflowlet server`` (run DB over REST + web UI) and ``mlflowlet serve`` (HTTP functions).

``serve --export nuclio`` writes the handler's Nuclio ``function.yaml`` instead of serving.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

ORDER = 80


def register(app: typer.Typer) -> None:
    """Add ``server`` and ``serve`` to the app."""
    app.command(
        "server",
        epilog="Example: MLFLOWLET_API_TOKEN=... mlflowlet server --host 0.0.0.0 --db /data/runs",
    )(server)
    app.command(
        "serve",
        epilog="Example: mlflowlet serve training.py:train --port 8081; "
        "mlflowlet serve training.py:train --export nuclio",
    )(serve)


def server(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    db: Annotated[
        str | None,
        typer.Option(
            help="run DB: a directory, .db file, sqlite:/// or postgresql:// URL "
            "(default MLFLOWLET_DBPATH)"
        ),
    ] = None,
    artifact_root: Annotated[
        str | None,
        typer.Option(
            help="directory whose files the server lets clients download (default: the DB's)"
        ),
    ] = None,
    max_body_mb: Annotated[int, typer.Option(help="largest request body, in MiB")] = 64,
) -> None:
    """Serve the run DB over REST (bearer token MLFLOWLET_API_TOKEN) with the web UI at /."""
    from ..server._uvicorn import run_foreground
    from ..server.app import check_bind, create_app
    from ..settings import get_settings

    token = get_settings().api_token
    bind = check_bind(host, token)
    app = create_app(
        db or None, token=token, artifact_root=artifact_root, max_body=max_body_mb * 1024 * 1024
    )
    where = getattr(app.state.db, "url", "") or repr(app.state.db)
    where = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", where)  # never print a DB password
    typer.echo(
        f"mlflowlet server on http://{bind}:{port}  (runs: {where}; artifacts: "
        f"{app.state.artifact_root})"
    )
    if not token:
        typer.echo(
            "no MLFLOWLET_API_TOKEN set: auth is off, so the server listens on "
            f"{bind} only; set a token to serve other hosts"
        )
    else:
        typer.echo("auth: clients must send 'Authorization: Bearer <MLFLOWLET_API_TOKEN>'")
    run_foreground(app, bind, port)


def serve(
    target: Annotated[str, typer.Argument(help="the handler: file.py:function or module:function")],
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8081,
    db: Annotated[
        str | None,
        typer.Option(
            help="run DB the function also records into (default: only the caller records)"
        ),
    ] = None,
    artifact_root: Annotated[str, typer.Option(help="where the handler's artifacts go")] = "",
    max_concurrency: Annotated[int, typer.Option(help="requests running at once")] = 32,
    export: Annotated[
        str | None, typer.Option(help="write a deployment file instead of serving: 'nuclio'")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="file --export writes")] = (
        "function.yaml"
    ),
    name: Annotated[str, typer.Option(help="function name for --export")] = "",
    workers: Annotated[int, typer.Option(help="concurrent requests per replica (--export)")] = 4,
) -> None:
    """Host a handler as an HTTP function: POST / with a run spec JSON returns the run JSON."""
    from ..errors import ConfigError

    if export is not None:
        if export != "nuclio":
            raise ConfigError(f"unknown --export target {export!r}; available: nuclio")
        from ..server.nuclio import export_nuclio

        path = export_nuclio(target, output, name=name, workers=workers, db=db or "")
        typer.echo(f"wrote {path}: deploy it with `nuctl deploy --file {path}`")
        return
    from ..server._uvicorn import run_foreground
    from ..server.app import check_bind
    from ..server.serve import create_function_app
    from ..settings import get_settings

    token = get_settings().api_token
    bind = check_bind(host, token)
    app = create_function_app(
        target, db=db, token=token, artifact_root=artifact_root, max_concurrency=max_concurrency
    )
    typer.echo(f"serving {target} on http://{bind}:{port}  (POST / with a run spec JSON)")
    if not token:
        typer.echo(f"no MLFLOWLET_API_TOKEN set: no auth, listening on {bind} only")
    run_foreground(app, bind, port)
