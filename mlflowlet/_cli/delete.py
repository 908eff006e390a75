"""``mlflowlet del runs|run UID|artifacts``: delete records (never without a filter).

A bulk delete first lists what matches, prints it, and deletes exactly those records; more than
one needs ``--yes`` (nothing is deleted without it). Label filters follow
:func:`mlflowlet.db.base.parse_label_filters` (``k=v`` splits at the first ``=``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import typer

from ._common import open_db, usage_error

ORDER = 40
SHOWN = 50  # records listed before "... and N more"
_Opt = typer.Option
_Project = Annotated[str | None, _Opt(help="project name")]
_Labels = Annotated[
    list[str] | None,
    _Opt("-l", "--label", metavar="KEY[=VALUE]", help="label filter: k, k=v, k!=v, k~=v"),
]
_Db = Annotated[str | None, _Opt(help="run DB location")]
_Yes = Annotated[bool, _Opt("--yes", "-y", help="delete when more than one record matches")]

del_app = typer.Typer(help="Delete runs or artifacts from the run DB.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``del`` group to the app."""
    app.add_typer(del_app, name="del")


def _confirmed(lines: list[str], what: str, yes: bool) -> bool:
    """Print what matches; return whether to delete it (more than one needs ``--yes``)."""
    if not lines:
        typer.echo(f"no {what} matches: deleted 0 {what}(s)")
        return False
    typer.echo(f"{len(lines)} {what}(s) match:")
    for line in lines[:SHOWN]:
        typer.echo(f"  {line}")
    if len(lines) > SHOWN:
        typer.echo(f"  ... and {len(lines) - SHOWN} more")
    if len(lines) > 1 and not yes:
        typer.echo(f"nothing deleted: add --yes to delete these {len(lines)} {what}s", err=True)
        raise typer.Exit(1)
    return True


@del_app.command("runs", epilog="Example: mlflowlet del runs --name train --state error --yes")
def del_runs(
    project: _Project = None,
    name: Annotated[str | None, _Opt(help="run name (~text: contains)")] = None,
    label: _Labels = None,
    state: Annotated[str | None, _Opt(help="run state")] = None,
    days_ago: Annotated[int, _Opt(min=0, help="only runs started in the last N days")] = 0,
    yes: _Yes = False,
    db: _Db = None,
) -> None:
    """Delete the runs matching every filter given (at least one), with their iterations."""
    if not (project or name or label or state or days_ago):
        raise usage_error(
            "refusing to delete every run: give --name, --project, --label, --state or --days-ago"
        )
    rundb = open_db(db)
    runs = rundb.list_runs(
        name=name or "", project=project or "", labels=label or None, state=state or ""
    )
    if days_ago:  # the same cut as del_runs(days_ago=...): started within the last N days
        since = (datetime.now(timezone.utc) - timedelta(days=days_ago)).isoformat()
        runs = [r for r in runs if (r.get("status", {}).get("start_time") or "") >= since]
    lines = [_run_line(r) for r in runs]
    if not _confirmed(lines, "run", yes):
        return
    for run in runs:  # exactly the runs shown, not whatever matches by now
        meta = run["metadata"]
        rundb.del_run(meta["uid"], project=meta.get("project", ""))
    typer.echo(f"deleted {len(runs)} run(s)")


def _run_line(run: dict[str, Any]) -> str:
    meta, status = run["metadata"], run.get("status", {})
    return (
        f"{meta['uid']}  {meta.get('project', '')}/{meta.get('name', '')}  "
        f"{status.get('state', '')}  {status.get('start_time', '')}"
    )


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


@del_app.command(
    "artifacts", epilog="Example: mlflowlet del artifacts --name model.txt --tag '*' --yes"
)
def del_artifacts(
    project: _Project = None,
    name: Annotated[str | None, _Opt(help="artifact key, exactly (~text: contains)")] = None,
    tag: Annotated[str | None, _Opt(help="tag (default: every version)")] = None,
    label: _Labels = None,
    yes: _Yes = False,
    db: _Db = None,
) -> None:
    """Delete the artifact versions matching every filter given (at least one)."""
    from ..db.base import exact_key

    if not (project or name or tag or label):
        raise usage_error(
            "refusing to delete every artifact: give --name, --project, --tag or --label"
        )
    rundb = open_db(db)
    arts = rundb.list_artifacts(
        name=exact_key(name or ""), project=project or "", tag=tag or "*", labels=label or None
    )
    versions = list(dict.fromkeys((a.get("project", ""), a["key"], a["uid"]) for a in arts))
    lines = [f"{p}/{key}@{uid}" for p, key, uid in versions]
    if not _confirmed(lines, "artifact version", yes):
        return
    count = sum(rundb.del_artifact(key, project=p, uid=uid) for p, key, uid in versions)
    typer.echo(f"deleted {count} artifact version(s)")
