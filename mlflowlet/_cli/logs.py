"""``mlflowlet logs UID [--follow]``: print a run's captured output."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from ._common import open_db

ORDER = 30
POLL_SECONDS = 0.5


def register(app: typer.Typer) -> None:
    """Add ``logs`` to the app."""
    app.command("logs", epilog="Example: mlflowlet logs 3f2a... --follow")(logs)


def logs(
    uid: Annotated[str, typer.Argument(help="the run uid")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing until the run ends")
    ] = False,
    project: Annotated[str | None, typer.Option(help="project name")] = None,
    db: Annotated[str | None, typer.Option(help="run DB location")] = None,
) -> None:
    """Print the output a run captured (stdout, stderr and its logger)."""
    from ..model import TERMINAL_STATES

    rundb = open_db(db)
    project = project or ""
    run = rundb.read_run(uid, project=project)  # an unknown uid fails here, naming it
    offset = 0
    while True:
        chunk = rundb.get_log(uid, project=project, offset=offset)
        if chunk:
            offset += len(chunk)
            sys.stdout.write(chunk.decode("utf-8", "replace"))
            sys.stdout.flush()
        if not follow or run.get("status", {}).get("state") in TERMINAL_STATES:
            if follow:  # output written between the last read and the end
                rest = rundb.get_log(uid, project=project, offset=offset)
                sys.stdout.write(rest.decode("utf-8", "replace"))
            return
        time.sleep(POLL_SECONDS)  # polling a DB another process writes
        run = rundb.read_run(uid, project=project)
