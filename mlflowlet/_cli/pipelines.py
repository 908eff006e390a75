"""``mlflowlet get lineage KEY|UID`` and ``mlflowlet resume UID``: pipeline lineage and resume."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import emit, error_line, open_db, usage_error

if TYPE_CHECKING:
    from ..db.base import RunDB

ORDER = 25
_Opt = typer.Option
_UID = re.compile(r"^[0-9a-f]{32}$")


def register(app: typer.Typer) -> None:
    """Add ``resume`` to the app and ``lineage`` to the ``get`` group."""
    from .get import get_app

    get_app.command(
        "lineage",
        epilog="Examples: mlflowlet get lineage model --upstream | "
        "mlflowlet get lineage <pipeline or run uid>",
    )(get_lineage)
    app.command(
        "resume",
        epilog="Example: mlflowlet resume 3f2a... (or --pipeline "
        "examples/train_eval.py:train_eval)",
    )(resume)


def get_lineage(
    target: Annotated[
        str, typer.Argument(metavar="KEY|UID", help="an artifact key, a run uid or a pipeline uid")
    ],
    upstream: Annotated[bool, _Opt("--upstream", help="walk to what it came from")] = False,
    downstream: Annotated[bool, _Opt("--downstream", help="walk to what used it")] = False,
    output: Annotated[str, _Opt("--output", "-o", help="table | json | yaml")] = "table",
    db: Annotated[str | None, _Opt(help="run DB location")] = None,
) -> None:
    """Show lineage edges: producer run, output, artifact uri, consumer run and parameter."""
    rundb = open_db(db)
    query: dict[str, Any] = {"upstream": upstream, "downstream": downstream}
    if _UID.match(target):
        kind = _run_kind(rundb, target)
        if kind == "pipeline" and not (upstream or downstream):
            query["pipeline_uid"] = target
        else:
            query["run_uid"] = target
    else:
        query["artifact_key"] = target
    rows = rundb.list_lineage(**query)
    emit(rows, output, lambda: _table(rows))


def _run_kind(rundb: RunDB, uid: str) -> str:
    found = rundb.list_runs(uid=uid, last=1)
    return found[0]["metadata"].get("labels", {}).get("kind", "") if found else ""


def _table(rows: list[dict[str, Any]]) -> str:
    header = ["producer", "iter", "output", "consumer", "param", "artifact"]
    body = [
        [
            (r["producer_uid"] or "")[:12],
            str(r["producer_iter"] or 0),
            r["output"] or "",
            (r["consumer_uid"] or "")[:12],
            r["consumer_param"] or "",
            r["artifact_uri"] or "(value)",
        ]
        for r in rows
    ]
    table = [header, *body]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) if body else "no lineage found"


def resume(
    uid: Annotated[str, typer.Argument(help="the uid of the pipeline run to resume")],
    pipeline: Annotated[
        str | None, _Opt("--pipeline", help="file.py:name or module:name (default: the run's own)")
    ] = None,
    max_parallel: Annotated[int | None, _Opt(min=1, help="steps running at once")] = None,
    cache: Annotated[bool, _Opt("--cache", help="reuse cached step runs")] = False,
    db: Annotated[str | None, _Opt(help="run DB location")] = None,
) -> None:
    """Rerun only the steps of a pipeline run that failed or never ran, reusing the rest."""
    from ..errors import PipelineError

    rundb = open_db(db)
    found = rundb.list_runs(uid=uid, last=1)
    if not found:
        raise usage_error(f"no run {uid} in the run DB")
    old = found[0]
    if old["metadata"].get("labels", {}).get("kind") != "pipeline":
        raise PipelineError(f"run {uid} is not a pipeline run; resume takes a pipeline run uid")
    pipe = _load(pipeline) if pipeline else _find(old)
    result = pipe.run(
        resume=uid,
        project=old["metadata"].get("project", ""),
        max_parallel=max_parallel,
        cache=cache or None,
        db=rundb,
        **old.get("spec", {}).get("params", {}),
    )
    result.show()
    print(f"run {result.name!r} {result.state}  uid={result.uid}  (resumed from {uid})")
    if result.state != "completed":
        sys.stderr.write(
            f"error: pipeline {result.name!r} ({result.uid}) failed: {error_line(result.error)}\n"
        )
        raise typer.Exit(1)


def _load(ref: str) -> Any:
    from .._binding import load_module_from_file

    source, sep, name = ref.rpartition(":")
    if not sep or not source or not name:
        raise usage_error(f"--pipeline {ref!r} is not file.py:name or module:name")
    module = load_module_from_file(source) if source.endswith(".py") else _import(source)
    obj = getattr(module, name, None)
    if obj is None or not callable(getattr(obj, "run", None)):
        raise usage_error(f"{ref} names no pipeline")
    return obj


def _import(name: str) -> Any:
    import importlib

    from ..errors import ConfigError

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {name!r}: {exc}") from None


def _find(old: dict[str, Any]) -> Any:
    """Find the pipeline object from the handler and source file the run recorded."""
    from .._binding import load_module_from_file
    from ..errors import ConfigError
    from ..pipelines import Pipeline

    spec = old.get("spec", {})
    module_name, _, qualname = (spec.get("handler") or "").partition(":")
    path = (spec.get("source") or "").rsplit(":", 1)[0]
    module = None
    if module_name and module_name != "__main__":
        try:
            module = _import(module_name)
        except ConfigError:
            module = None
    if module is None and path.endswith(".py"):
        module = load_module_from_file(path)
    for obj in vars(module).values() if module is not None else ():
        if isinstance(obj, Pipeline) and obj.fn.__qualname__ == qualname:
            return obj
    raise ConfigError(
        f"cannot find pipeline {spec.get('handler')!r} (from {path or '?'}); "
        "name it with --pipeline file.py:name"
    )
