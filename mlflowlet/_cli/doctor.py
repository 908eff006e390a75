"""``mlflowlet doctor`` (also ``mlflowlet db check``) and ``mlflowlet abort UID``."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import open_db

ORDER = 45
_Opt = typer.Option
_Db = Annotated[str | None, _Opt(help="run DB: a directory, .db file, PostgreSQL or server URL")]
_Checks = Annotated[
    list[str] | None, _Opt("--check", metavar="NAME", help="run only this check (repeatable)")
]

db_app = typer.Typer(help="Look after the run DB itself.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``doctor``, the ``db`` group (``db check``) and ``abort``."""
    app.command("doctor", epilog="Example: mlflowlet doctor --db ./runs")(doctor)
    db_app.command("check", epilog="Example: mlflowlet db check --db ./runs")(doctor)
    app.add_typer(db_app, name="db")
    app.command("abort", epilog="Example: mlflowlet abort 3f2a... --timeout 30")(abort)


def doctor(db: _Db = None, check: _Checks = None) -> None:
    """Check the run DB for damage (SQLite quick_check) and report; exits 1 on any problem."""
    from ..doctor import open_target, run_checks

    target = open_target(db or "")
    findings = run_checks(target, check)
    where = target.sqlite_path or target.url
    typer.echo(f"run DB {where}")
    for found in findings:
        note = f" ({found.note})" if found.note else ""
        typer.echo(f"  {found.check}: {found.status}{note}")
        for problem in found.problems:
            typer.echo(f"    {problem}")
    if any(f.status == "failed" for f in findings):
        typer.echo("problems found: restore the run DB from a backup", err=True)
        raise typer.Exit(1)


def abort(
    uid: Annotated[str, typer.Argument(help="the run uid")],
    project: Annotated[str | None, _Opt(help="project name")] = None,
    iteration: Annotated[int, _Opt("--iter", help="hyper-parameter iteration")] = 0,
    timeout: Annotated[
        float, _Opt(help="seconds to wait for a signalled process to record the end")
    ] = 10.0,
    db: _Db = None,
) -> None:
    """Abort a run: signal its process (SIGINT), delete its Kubernetes workload, or mark it.

    Where neither the process nor the workload can be reached, the run is marked aborted.
    """
    from ..model import RunObject

    rundb = open_db(db)
    run = RunObject.model_validate(rundb.read_run(uid, project=project or "", iter=iteration))
    done = run.abort(db=rundb, timeout=timeout)
    note = f": {done.status.error}" if done.status.error else ""
    typer.echo(f"run {done.metadata.name!r} ({done.uid}) {done.state}{note}")
    if done.state != "aborted":
        raise typer.Exit(1)
