"""``mlflowlet del runs|run UID|artifacts``: delete records (never without a filter)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import open_db, usage_error

ORDER = 40
_Opt = typer.Option
_Project = Annotated[str | None, _Opt(help="project name")]
_Labels = Annotated[
    list[str] | None, _Opt("-l", "--label", metavar="KEY[=VALUE]", help="label filter")
]
_Db = Annotated[str | None, _Opt(help="run DB location")]

del_app = typer.Typer(help="Delete runs or artifacts from the run DB.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``del`` group to the app."""
    app.add_typer(del_app, name="del")


@del_app.command("runs", epilog="Example: mlflowlet del runs --name train --state error")
def del_runs(
    project: _Project = None,
    name: Annotated[str | None, _Opt(help="run name")] = None,
    label: _Labels = None,
    state: Annotated[str | None, _Opt(help="run state")] = None,
    days_ago: Annotated[int, _Opt(min=0, help="only runs started in the last N days")] = 0,
    db: _Db = None,
) -> None:
    """Delete the runs matching every filter given (at least one)."""
    if not (project or name or label or state or days_ago):
        raise usage_error(
            "refusing to delete every run: give --name, --project, --label, --state or --days-ago"
        )
    count = open_db(db).del_runs(
        name=name or "",
        project=project or "",
        labels=label or None,
        state=state or "",
        days_ago=days_ago,
    )
    typer.echo(f"deleted {count} run(s)")


@del_app.command("run", epilog="Example: mlflowlet del run 3f2a...")
def del_run(
    uid: Annotated[str, typer.Argument(help="the run uid")],
    project: _Project = None,
    db: _Db = None,
) -> None:
    """Delete one run with all its iterations, logs and metrics."""
    rundb = open_db(db)
    rundb.read_run(uid, project=project or "")  # an unknown uid fails, naming it
    rundb.del_run(uid, project=project or "")
    typer.echo(f"deleted run {uid}")


@del_app.command("artifacts", epilog="Example: mlflowlet del artifacts --name model.txt")
def del_artifacts(
    project: _Project = None,
    name: Annotated[str | None, _Opt(help="artifact key")] = None,
    tag: Annotated[str | None, _Opt(help="tag")] = None,
    label: _Labels = None,
    db: _Db = None,
) -> None:
    """Delete the artifact versions matching every filter given (at least one)."""
    if not (project or name or tag or label):
        raise usage_error(
            "refusing to delete every artifact: give --name, --project, --tag or --label"
        )
    count = open_db(db).del_artifacts(
        name=name or "", project=project or "", tag=tag or "", labels=label or None
    )
    typer.echo(f"deleted {count} artifact version(s)")
