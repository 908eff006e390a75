"""``mlflowlet version`` and ``mlflowlet config``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ._common import emit

ORDER = 90


def register(app: typer.Typer) -> None:
    """Add ``version`` and ``config`` to the app."""
    app.command("version", epilog="Example: mlflowlet version")(version)
    app.command("config", epilog="Example: MLFLOWLET_PROJECT=demo mlflowlet config -o json")(config)


def version() -> None:
    """Print the mlflowlet version."""
    from .._version import __version__

    typer.echo(f"mlflowlet {__version__}")


def config(
    output: Annotated[str, typer.Option("--output", "-o", help="table | json | yaml")] = "table",
) -> None:
    """Show the effective settings and where each came from (an env variable or the default)."""
    from ..db import resolve_db_path
    from ..settings import get_settings

    settings = get_settings()
    rows: list[dict[str, Any]] = []
    for name, (value, origin) in settings.sources().items():
        if name == "api_token" and value:
            value = "***"
        elif name == "exec_config" and value:
            value = f"<{len(str(value))} characters of JSON>"
        rows.append({"setting": name, "value": value, "from": origin})
    where = settings.dbpath
    if "://" not in where or where.startswith(("file://", "sqlite://")):
        rows.append({"setting": "(run DB file)", "value": resolve_db_path(where), "from": "dbpath"})

    def table() -> str:
        width = max(len(r["setting"]) for r in rows)
        vwidth = max(len(str(r["value"])) for r in rows)
        return "\n".join(
            f"{r['setting']:<{width}}  {str(r['value']):<{vwidth}}  {r['from']}" for r in rows
        )

    emit(rows, output, table)
