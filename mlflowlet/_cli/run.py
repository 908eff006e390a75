"""``mlflowlet run``: run a script, a function or a pipeline, tracked.

What runs where: ``file.py`` runs in a child process (the subprocess runtime; with ``--handler``
the child calls that function); ``module:function`` and ``file.py:function`` run in this process
(the local runtime), and an object there with a ``.run`` method that is not a plain function (a
pipeline) is called as ``obj.run(**params)``; ``dask://``, ``http(s)://``, ``job://`` URLs pick
their runtime. ``--mode noctx|pass`` always runs a child process.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import STATE, check_choice, error_line, open_db, parse_pairs, usage_error
from ._params import check_iteration_names, keep_pipeline_text, keep_text
from ._targets import kind_runner, resolve_target

if TYPE_CHECKING:
    from ..db.base import RunDB
    from ..model import RunObject

ORDER = 10
_EPILOG = (
    "Examples:\n\n"
    "mlflowlet run --name train -p p2=5 -i infile.txt=infile.txt -s file=secrets.txt training.py"
    "\n\n"
    'mlflowlet run --name train_hyper -x p1="[3,7,5]" -x p2="[5,2,9]" --selector max.accuracy '
    "training.py\n\n"
    "mlflowlet run examples.handler:my_func -p p1=3 --dump\n\n"
    "mlflowlet run --handler my_func handler.py\n\n"
    "mlflowlet run --mode noctx script.py -- --extra-arg 1"
)

_Opt = typer.Option
_Many = list[str] | None


def register(app: typer.Typer) -> None:
    """Add ``run`` to the app."""
    app.command("run", epilog=_EPILOG)(run)


def run(  # noqa: PLR0913 - one option per flag of the command
    url: Annotated[
        str | None,
        typer.Argument(help="training.py, module:function, file.py:function, or a runtime URL"),
    ] = None,
    args: Annotated[_Many, typer.Argument(help="arguments for the script (after --)")] = None,
    param: Annotated[
        _Many,
        _Opt(
            "-p",
            "--param",
            metavar="KEY=VALUE",
            help="a parameter; the value is a Python/JSON literal or a string",
        ),
    ] = None,
    inputs: Annotated[_Many, _Opt("-i", "--input", metavar="KEY=URL", help="an input")] = None,
    outputs: Annotated[
        _Many,
        _Opt(
            "-o",
            "--output",
            metavar="KEY=PATH",
            help="after the run, write artifact/result KEY to PATH",
        ),
    ] = None,
    secrets: Annotated[
        _Many, _Opt("-s", "--secrets", metavar="KIND=SOURCE", help="file=secrets.txt or env=A,B")
    ] = None,
    hyperparam: Annotated[
        _Many, _Opt("-x", "--hyperparam", metavar="KEY=[..]", help="hyper-parameter values, a list")
    ] = None,
    param_file: Annotated[str | None, _Opt(help="CSV/JSON file, one row per run")] = None,
    strict: Annotated[
        bool, _Opt(help="a -p naming no parameter of the handler is an error (--no-strict: kept)")
    ] = True,
    selector: Annotated[str | None, _Opt(help="best iteration, e.g. max.accuracy")] = None,
    strategy: Annotated[str | None, _Opt(help="grid | list | random")] = None,
    max_iterations: Annotated[int | None, _Opt(help="at most this many iterations")] = None,
    parallel: Annotated[int | None, _Opt(help="iterations at once (default: CPUs)")] = None,
    timeout: Annotated[float | None, _Opt(help="seconds before a run is killed")] = None,
    name: Annotated[str | None, _Opt(help="run name")] = None,
    project: Annotated[str | None, _Opt(help="project name")] = None,
    handler: Annotated[str | None, _Opt(help="function to run (in the script, or mod:fn)")] = None,
    label: Annotated[_Many, _Opt("-l", "--label", metavar="KEY=VALUE", help="a run label")] = None,
    artifact_path: Annotated[
        str | None, _Opt("--artifact-path", "--out-path", help="where artifacts are written")
    ] = None,
    db: Annotated[str | None, _Opt(help="run DB: a directory, .db file or server URL")] = None,
    mode: Annotated[
        str | None, _Opt(help="noctx: plain script, params as --k v; pass: the command as given")
    ] = None,
    watch: Annotated[bool, _Opt(help="show the run's output / progress")] = True,
    dump: Annotated[bool, _Opt("--dump", help="print the final run as YAML")] = False,
    as_json: Annotated[bool, _Opt("--json", help="print the final run as JSON")] = False,
    verbose: Annotated[bool, _Opt("--verbose", "-v", help="tracebacks on errors")] = False,
    runtime_kind: Annotated[
        str | None, _Opt("--kind", help="runtime kind: job, mpijob, spark, dask, ...")
    ] = None,
    image: Annotated[str | None, _Opt(help="container image (kinds job, mpijob, spark)")] = None,
    dry_run: Annotated[
        bool, _Opt("--dry-run", help="print the Kubernetes manifest(s); submit nothing")
    ] = False,
) -> None:
    """Run a script, a function or a pipeline and record the run.

    Exit code 0 when the run completed, 1 when it failed, 2 on bad usage.
    """
    STATE["verbose"] = STATE["verbose"] or verbose
    check_choice(mode, ("noctx", "pass"), "--mode")
    check_choice(strategy, ("grid", "list", "random"), "--strategy")
    if dump and as_json:
        raise usage_error("--dump and --json both print the run: choose one")
    _check_positive(parallel=parallel, max_iterations=max_iterations, timeout=timeout)
    task = _build_task(
        param,
        inputs,
        outputs,
        secrets,
        hyperparam,
        param_file,
        selector,
        strategy,
        max_iterations,
        parallel,
        timeout,
        name,
        project,
        label,
        artifact_path,
    )
    task.spec.strict = strict
    rundb = open_db(db)
    if runtime_kind or image or dry_run:  # a runtime named by --kind (Kubernetes kinds)
        target, fn = kind_runner(url, args or [], runtime_kind, image, handler)
        kind = "run"
        if dry_run:
            _print_manifests(target, task, fn, as_json)
            return
    else:
        kind, target, fn = resolve_target(url, args or [], handler, mode)
    if kind == "run":
        check_iteration_names(task, fn, url)
        keep_text(task, param, fn, url)
    elif kind == "pipeline":
        keep_pipeline_text(task, param, target)
        run_options = _pipeline_options(
            target,
            {"-s/--secrets": secrets, "-x/--hyperparam": hyperparam, "--param-file": param_file,
             "--selector": selector, "--strategy": strategy, "--max-iterations": max_iterations,
             "--parallel": parallel, "--timeout": timeout, "--name": name},
            project=project, labels=parse_pairs(label, "-l/--label"), artifact_path=artifact_path,
        )  # fmt: skip
    quiet = dump or as_json
    try:
        with _stdout_to_stderr(quiet):
            if kind == "pipeline":
                result = target.run(
                    **task.spec.params, **_pipeline_inputs(target, task), **run_options
                )
            else:
                result = _run_task(target, task, fn, rundb, watch, mode, timeout)
    except KeyboardInterrupt as exc:
        from .._interrupt import exit_now

        exit_now(exc)
    if not (hasattr(result, "metadata") and hasattr(result, "status")):
        print(result)  # a pipeline object of another shape: its own summary
        if getattr(result, "state", "completed") != "completed":
            raise typer.Exit(1)
        return
    if kind == "pipeline" and not quiet and callable(getattr(result, "show", None)):
        result.show()  # the pipeline's steps, one line each
    final = _stored(result, rundb)
    wanted = parse_pairs(outputs, "-o/--output")
    if wanted and result.state == "completed":
        _export(result, wanted)
    _report(final, dump, as_json)
    if result.state != "completed":
        meta = result.metadata
        reason = error_line(result.status.error) if result.status.error else result.state
        verb = "failed" if result.state == "error" else f"ended {result.state}"
        sys.stderr.write(f"error: run {meta.name!r} ({meta.uid}) {verb}: {reason}\n")
        raise typer.Exit(1)


def _pipeline_options(target: object, dropped: dict[str, object], **options: Any) -> dict[str, Any]:
    """Return the run options a pipeline takes; refuse a flag it cannot carry (never drop it).

    ``--project``, ``-l`` and ``--artifact-path`` reach a mlflowlet ``Pipeline.run``; the flags
    in ``dropped`` (secrets, sweeps, limits, a run name) set fields of a function's or script's
    run that a pipeline run does not have, and any of them is refused for another object with a
    ``.run`` (its ``run(**params)`` would take them as parameters).
    """
    from ..pipelines.pipeline import Pipeline

    if not isinstance(target, Pipeline):
        dropped = {**dropped, "--project": options["project"], "-l/--label": options["labels"],
                   "--artifact-path": options["artifact_path"]}  # fmt: skip
    for flag, value in dropped.items():
        if value is not None and value != [] and value != {}:
            raise usage_error(
                f"{flag} is not carried by a pipeline run: remove it (a pipeline's steps read "
                "secrets from their environment; sweeps, retries and limits are set per step)"
            )
    return {k: v for k, v in options.items() if v} if isinstance(target, Pipeline) else {}


def _check_positive(**values: float | None) -> None:
    """Refuse a zero or negative ``--parallel``, ``--max-iterations`` or ``--timeout``."""
    for name, value in values.items():
        if value is not None and not value > 0:  # NaN too
            flag = "--" + name.replace("_", "-")
            raise usage_error(f"{flag} {value:g} must be greater than 0")


def _build_task(
    param,
    inputs,
    outputs,
    secrets,
    hyperparam,
    param_file,
    selector,
    strategy,
    max_iterations,
    parallel,
    timeout,
    name,
    project,
    label,
    artifact_path,
) -> Any:
    from .._coerce import parse_cli
    from ..model import new_task

    params = {k: parse_cli(v) for k, v in parse_pairs(param, "-p/--param").items()}
    hyper = _hyper_params(hyperparam)
    task = new_task(
        name=name,
        project=project,
        params=params,
        inputs=_inputs(inputs),
        outputs=list(parse_pairs(outputs, "-o/--output")),
        labels=parse_pairs(label, "-l/--label"),
        artifact_path=artifact_path,
    )
    for kind, source in _secret_sources(secrets):
        task.with_secrets(kind, source)
    if hyper:
        task.with_hyper_params(
            hyper,
            selector=selector,
            strategy=strategy or "grid",
            max_iterations=max_iterations,
            parallel=parallel,
        )
    elif param_file:
        task.with_param_file(
            param_file,
            selector=selector,
            strategy=strategy or "list",
            max_iterations=max_iterations,
            parallel=parallel,
        )
    elif selector:
        task.spec.selector = selector
    if timeout is not None:
        task.spec.timeout = timeout
    return task


def _hyper_params(items: list[str] | None) -> dict[str, list[Any]]:
    from .._binding import parse_literal

    out: dict[str, list[Any]] = {}
    for key, text in parse_pairs(items, "-x/--hyperparam").items():
        values = parse_literal(text)
        if not isinstance(values, (list, tuple)) or not values:
            raise usage_error(
                f"-x {key}={text}: hyper-parameter values must be a non-empty list, "
                f'e.g. -x {key}="[1,2,3]"'
            )
        out[key] = list(values)
    return out


def _inputs(items: list[str] | None) -> dict[str, str]:
    out = parse_pairs(items, "-i/--input")
    # a relative local path is recorded absolute, so the run stays readable from elsewhere
    return {
        k: os.path.abspath(v) if "://" not in v and os.path.exists(v) else v for k, v in out.items()
    }


def _pipeline_inputs(pipe: object, task: RunObject) -> dict[str, str]:
    """Return ``-i KEY=URL`` values for a pipeline's ``DataItem`` parameters (its inputs).

    A key that is no such parameter is refused: a pipeline takes its inputs by name.
    """
    given = dict(task.spec.inputs or {})
    if not given:
        return given
    names = [p.name for p in getattr(pipe, "params", ()) if getattr(p, "type", "") == "DataItem"]
    unknown = sorted(set(given) - set(names))
    if unknown:
        name = getattr(pipe, "name", "?")
        raise usage_error(
            f"-i {unknown[0]}=...: pipeline {name!r} has no input {unknown[0]!r} (inputs "
            f"are its parameters typed DataItem: {names}); pass other values with -p"
        )
    clash = sorted(set(given) & set(task.spec.params))
    if clash:
        raise usage_error(f"{clash[0]!r} is given with both -i and -p: give it once")
    return given


def _secret_sources(items: list[str] | None) -> list[tuple[str, str]]:
    out = []
    for kind, source in parse_pairs(items, "-s/--secrets").items():
        check_choice(kind, ("file", "env", "inline"), "-s/--secrets kind")
        out.append((kind, os.path.abspath(source) if kind == "file" else source))
    return out


def _print_manifests(runtime: Any, task: Any, fn: Any, as_json: bool) -> None:
    """Print what ``--dry-run`` would submit (a Secret with its values redacted, then the job)."""
    if not hasattr(runtime, "last_manifests"):
        raise usage_error(
            f"--dry-run prints Kubernetes manifests: use --kind job, mpijob or "
            f"spark, not {runtime.kind!r}"
        )
    runtime.run(task, handler=fn, dry_run=True)
    docs = runtime.last_manifests
    if as_json:
        print(json.dumps(docs if len(docs) > 1 else docs[0], indent=2))
        return
    import yaml

    print(yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False), end="")


def _run_task(
    runtime: Any,
    task: Any,
    fn: Any,
    db: RunDB,
    watch: bool,
    mode: str | None,
    timeout: float | None,
) -> Any:
    options: dict[str, Any] = {}
    if mode:
        options["mode"] = mode
    if timeout is not None:
        options["timeout"] = timeout
    sweep = bool(task.spec.hyper_params or task.spec.param_file)
    progress = None
    if sweep and watch:
        from ._progress import IterationProgress

        progress = IterationProgress.for_task(task)
        progress.attach(runtime)
    try:
        return runtime.run(
            task, handler=fn, db=db, watch=watch and not sweep, raise_on_error=False, **options
        )
    finally:
        if progress is not None:
            progress.close()


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """Send the run's own output to stderr, so stdout holds only the YAML/JSON asked for."""
    if not active:
        yield
        return
    from .. import _capture

    saved = sys.stdout
    sys.stdout = _capture._Tee(sys.stderr)  # still copied into the run's log
    try:
        yield
    finally:
        sys.stdout = saved


def _stored(run: Any, db: RunDB) -> Any:
    """Return the run as recorded (secret values masked), else the object itself."""
    from ..errors import MlflowletError
    from ..model import RunObject

    meta = run.metadata
    try:
        return RunObject.model_validate(db.read_run(meta.uid, meta.project, meta.iteration))
    except (MlflowletError, ValueError):
        return run


def _export(run: Any, wanted: dict[str, str]) -> None:
    from ..entrypoint import export_outputs

    results = {k: p for k, p in wanted.items() if k in run.status.results}
    artifacts = {k: p for k, p in wanted.items() if k not in results}
    export_outputs(run, artifacts, results)


def _report(run: Any, dump: bool, as_json: bool) -> None:
    if as_json:
        from ..db._json import dumps

        print(dumps(run.to_dict(), indent=2))
        return
    if dump:
        print(run.to_yaml(), end="")
        return
    from .._text import printable

    meta, status = run.metadata, run.status
    line = f"run {meta.name!r} {status.state}  uid={meta.uid}"
    if status.iterations:
        line += f"  iterations={max(len(status.iterations) - 1, 0)}"
    print(line)
    if status.results:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in status.results.items())
        print("  results:   " + printable(shown))
    if status.artifacts:
        print("  artifacts: " + printable(", ".join(a.get("key", "?") for a in status.artifacts)))
    print(f"  more:      mlflowlet get run {meta.uid}   |   mlflowlet logs {meta.uid}")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:39] + "…"
