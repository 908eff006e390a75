"""``mlflowlet gc``: remove the artifact versions and files that deleted runs left behind."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import open_db

ORDER = 42
_Opt = typer.Option


def register(app: typer.Typer) -> None:
    """Add ``gc`` to the app."""
    app.command("gc", epilog="Example: mlflowlet gc --project demo --dry-run")(gc)


def gc(
    project: Annotated[str | None, _Opt(help="only this project's versions")] = None,
    dry_run: Annotated[bool, _Opt("--dry-run", help="list what would go; remove nothing")] = False,
    db: Annotated[str | None, _Opt(help="run DB location")] = None,
) -> None:
    """Remove artifact versions whose run was deleted, and the files only they reference.

    `mlflowlet del runs` deletes run records; their artifact versions stay listed until `gc`.
    A file goes only when mlflowlet wrote it for such a version and no remaining version
    references it; files recorded where they are (upload=False) are never removed.
    """
    from ..artifacts import collect_garbage

    report = collect_garbage(open_db(db), project=project or "", dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for uri in report.files:
        typer.echo(f"{verb} {uri}")
    for uri in report.kept:
        typer.echo(f"kept {uri} (another version references it)")
    typer.echo(
        f"{verb} {len(report.versions)} artifact version(s) and {len(report.files)} file(s), "
        f"{report.bytes} bytes"
    )
