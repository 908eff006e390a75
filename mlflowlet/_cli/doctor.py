"""``mlflowlet doctor`` (also ``mlflowlet db check``) and ``mlflowlet abort UID``.

``doctor`` runs the checks registered in :mod:`mlflowlet.doctor`: the run DB's pages (SQLite
``quick_check``), runs whose process is gone, and every recorded artifact version's sha256.
"""

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
_ADVICE = {
    "db-integrity": "restore the run DB from a backup",
    "artifacts": "the damaged versions cannot be trusted; log them again",
}

db_app = typer.Typer(help="Look after the run DB itself.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``doctor``, the ``db`` group (``db check``) and ``abort``."""
    app.command("doctor", epilog="Example: mlflowlet doctor --db ./runs")(doctor)
    db_app.command("check", epilog="Example: mlflowlet db check --db ./runs")(doctor)
    app.add_typer(db_app, name="db")
    app.command("abort", epilog="Example: mlflowlet abort 3f2a... --timeout 30")(abort)


def doctor(
    db: _Db = None,
    project: Annotated[str | None, _Opt(help="only this project's artifacts")] = None,
    check: _Checks = None,
) -> None:
    """Check the run DB (pages, dead runs) and every artifact version; exit 1 on any problem."""
    from ..doctor import open_target, run_checks

    if db:
        open_db(db)  # MLFLOWLET_DBPATH follows --db, as for every command
    target = open_target(db or "", project=project or "")
    findings = run_checks(target, check)
    typer.echo(f"run DB {target.sqlite_path or target.url}")
    for found in findings:
        note = f" ({found.note})" if found.note else ""
        typer.echo(f"  {found.check}: {found.status}{note}")
        for problem in found.problems:
            typer.echo(f"    {problem}")
    failed = [f.check for f in findings if f.status == "failed"]
    if failed:
        advice = "; ".join(_ADVICE.get(name, f"see {name} above") for name in failed)
        typer.echo(f"problems found: {advice}", err=True)
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
