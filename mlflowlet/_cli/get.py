"""``mlflowlet get runs|artifacts|run UID|artifact KEY``: read what the run DB holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import emit, open_db

if TYPE_CHECKING:
    from ..db.base import RunDB

ORDER = 20
_Opt = typer.Option
_Project = Annotated[str | None, _Opt(help="project name")]
_Db = Annotated[str | None, _Opt(help="run DB: a directory, .db file or server URL")]
_Labels = Annotated[
    list[str] | None,
    _Opt("-l", "--label", metavar="KEY[=VALUE]", help="label filter (k=v, k!=v, k~=v or k)"),
]
_Last = Annotated[int, _Opt("--last", min=0, help="show at most N (newest first); 0 for all")]
_Output = Annotated[str, _Opt("--output", "-o", help="table | json | yaml")]

get_app = typer.Typer(help="Show runs and artifacts from the run DB.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``get`` group to the app."""
    app.add_typer(get_app, name="get")


@get_app.command(
    "runs",
    epilog="Example: mlflowlet get runs --name train -l framework=sklearn "
    "--state completed --last 5",
)
def get_runs(
    project: _Project = None,
    name: Annotated[str | None, _Opt(help="run name")] = None,
    label: _Labels = None,
    state: Annotated[str | None, _Opt(help="created, running, completed, error, ...")] = None,
    tag: Annotated[str | None, _Opt(help="run tag")] = None,
    last: _Last = 20,
    iterations: Annotated[bool, _Opt("--iterations", help="list iterations too")] = False,
    output: _Output = "table",
    db: _Db = None,
    no_check: Annotated[
        bool, _Opt("--no-check", help="skip the SQLite page check (quick_check) of the DB")
    ] = False,
) -> None:
    """List runs, newest first (an SQLite DB's pages are checked first: damage exits 1)."""
    rundb = open_db(db)
    if not no_check:
        _refuse_damaged(rundb)
    runs = rundb.list_runs(
        name=name or "",
        project=project or "",
        labels=label or None,
        state=state or "",
        iter=iterations,
        last=0 if tag else last,
    )
    if tag:
        runs = type(runs)(r for r in runs if r["metadata"].get("tag") == tag)
        runs = type(runs)(runs[:last] if last else runs)
    emit(list(runs), output, runs.to_text)


def _refuse_damaged(rundb: RunDB) -> None:
    from ..db.sqlite import SQLiteRunDB
    from ..errors import RunDBError

    if isinstance(rundb, SQLiteRunDB):
        problems = rundb.check_integrity()
        if problems:
            raise RunDBError(
                f"{problems[0]} ({len(problems)} problem(s)); run `mlflowlet doctor --db "
                f"{rundb.path}` and restore it from a backup (--no-check lists what still reads)"
            )


@get_app.command(
    "artifacts", epilog="Example: mlflowlet get artifacts --name model.txt --tag latest -o json"
)
def get_artifacts(
    project: _Project = None,
    name: Annotated[str | None, _Opt(help="key prefix (~text: contains, =key: exact)")] = None,
    label: _Labels = None,
    tag: Annotated[str | None, _Opt(help="tag (default: latest; '*' every version)")] = None,
    iteration: Annotated[int | None, _Opt("--iter", help="one hyper-parameter iteration")] = None,
    last: _Last = 50,
    output: _Output = "table",
    db: _Db = None,
) -> None:
    """List artifacts (the latest version of each key unless --tag is given)."""
    arts = open_db(db).list_artifacts(
        name=name or "",
        project=project or "",
        tag=tag or "",
        labels=label or None,
        iter=iteration,
    )
    if last:
        arts = type(arts)(arts[:last])
    emit(list(arts), output, arts.to_text)


@get_app.command("run", epilog="Example: mlflowlet get run 3f2a... -o json")
def get_run(
    uid: Annotated[str, typer.Argument(help="the run uid")],
    project: _Project = None,
    iteration: Annotated[int, _Opt("--iter", help="hyper-parameter iteration")] = 0,
    output: Annotated[str, _Opt("--output", "-o", help="yaml | json | table")] = "yaml",
    db: _Db = None,
) -> None:
    """Show one run."""
    from ..db.lists import RunList

    run = open_db(db).read_run(uid, project=project or "", iter=iteration)
    emit(run, output, RunList([run]).to_text)


@get_app.command("artifact", epilog="Example: mlflowlet get artifact model.txt --tag v1")
def get_artifact(
    key: Annotated[str, typer.Argument(help="the artifact key")],
    project: _Project = None,
    tag: Annotated[str | None, _Opt(help="tag (default latest)")] = None,
    uid: Annotated[str | None, _Opt(help="a version uid instead of a tag")] = None,
    output: Annotated[str, _Opt("--output", "-o", help="yaml | json | table")] = "yaml",
    db: _Db = None,
) -> None:
    """Show one artifact version."""
    from ..db.lists import ArtifactList

    art: Any = open_db(db).read_artifact(key, tag=tag or "", project=project or "", uid=uid)
    emit(art, output, ArtifactList([art]).to_text)
