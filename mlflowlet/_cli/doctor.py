"""``mlflowlet doctor``: check what the run DB records against what is stored.

Minimal: it verifies every recorded artifact version (full sha256, each stored object read
once). The run DB's own checks (SQLite ``quick_check``) are added by the crash-safety work; its
check registry takes this one as ``artifacts`` (``artifact_problems``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import open_db

ORDER = 45
_Opt = typer.Option


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to the app."""
    app.command("doctor", epilog="Example: mlflowlet doctor --project demo")(doctor)


def doctor(
    project: Annotated[str | None, _Opt(help="only this project's artifacts")] = None,
    db: Annotated[str | None, _Opt(help="run DB location")] = None,
) -> None:
    """Verify every recorded artifact version (sha256); exit 1 when any is damaged or missing."""
    from ..artifacts import verify_artifacts

    report = verify_artifacts(open_db(db), project=project or "")
    status = "failed" if report.problems else "ok"
    typer.echo(f"  artifacts: {status} ({report.checked} stored object(s) verified)")
    for problem in report.problems:
        typer.echo(f"    {problem}")
    if report.unverifiable:
        typer.echo(f"    {len(report.unverifiable)} version(s) have no sha256 (linked objects)")
    if report.problems:
        typer.echo(
            "problems found: the damaged versions cannot be trusted; log them again", err=True
        )
        raise typer.Exit(1)
