"""Run one task or pipeline step in this process: ``python -m mlflowlet.entrypoint``.

The process boundary every out-of-process runtime reuses (subprocess, Kubernetes jobs, KFP and
Argo steps). It needs nothing from the process that started it, so a container can call it
directly. The flags below are a stable interface: compiled pipelines call them.

Usage::

    python -m mlflowlet.entrypoint [--spec FILE] [--handler module:function | file.py:function
        | --script file.py|file.ipynb] [--artifact-path PATH]
        [--param KEY=VALUE ...] [--collected KEY ...] [--input KEY=PATH ...]
        [--output KEY=PATH ...] [--result KEY=PATH ...] [--result-json KEY=PATH ...]
        [--metrics PATH] [--state STATE]

Flags:
    --spec FILE: the run spec, a JSON or YAML file holding a run (or task) dict. Default: the
        JSON in ``MLFLOWLET_EXEC_CONFIG``; with neither, a new run.
    --handler H: the function to run, ``module:function`` or ``path/file.py:function``
        (overrides the spec's handler). A bare name is looked up in the spec's ``command`` file.
    --script FILE: run a whole script (``.py``) or notebook (``.ipynb``, converted, its
        ``parameters`` cell getting the params) as ``__main__``, in the run: its
        ``get_or_create_ctx()`` returns the run's context (no handler needed). Also what a spec
        whose ``command`` is a ``.py``/``.ipynb`` file and that has no handler runs.
    --artifact-path PATH: where the run's artifacts are written (overrides the spec's).
    --param KEY=VALUE: a parameter; the value is parsed as a JSON/Python literal, else kept as a
        string. Overrides the spec. Repeatable.
    --collected KEY: parameter KEY is a list collected from a mapped step, given as the JSON
        list an engine aggregates (Argo: one string per item, or the items themselves when
        every one is a JSON object or array). Each string item is decoded as the JSON that
        ``--result-json`` wrote, so items keep their types (numbers stay numbers). Repeatable.
    --input KEY=PATH: an input URL or local path (e.g. where an orchestrator put an upstream
        artifact). ``PATH/`` (a trailing slash) names a directory: the one file in it, so the
        file keeps its name and format suffix. Repeatable.
    --output KEY=PATH: after the run, copy artifact KEY's file (or directory) to PATH, creating
        its parent directories; ``PATH/`` copies the file into that directory under its own
        name. Repeatable.
    --result KEY=PATH: after the run, write result KEY to PATH: a string as it is, any other
        value as JSON. Repeatable.
    --result-json KEY=PATH: like ``--result``, but always JSON (a string too, quoted), so a
        consumer's ``--collected`` decodes every item to its original value. Repeatable.
    --metrics PATH: after the run, write its numeric results as one JSON object (``{"accuracy":
        0.9}``; booleans left out) to PATH, e.g. a KFP ``system.Metrics`` output artifact.
    --state STATE: for an exit handler: the engine's final state (``Succeeded``, ``Failed``, a
        KFP final-status JSON) becomes parameter ``state`` = ``completed`` or ``error``.

Environment:
    ``MLFLOWLET_EXEC_CONFIG``: the run spec as JSON (when ``--spec`` is not given).
    ``MLFLOWLET_EXEC_SECRETS``: inline secret values as a JSON object; read once and removed.
    ``MLFLOWLET_DBPATH``: the run DB to record into. Unset: a throwaway SQLite DB in a temporary
    directory (artifacts stay there; the DB file is removed at exit).
    ``JOB_COMPLETION_INDEX``: set by Kubernetes in each pod of an Indexed Job. When the spec has
    hyper-parameters, this process runs only iteration ``index + 1`` of them (no summary; the
    caller that submitted the Job selects the best), and reports that iteration's run.
    ``OMPI_COMM_WORLD_RANK`` / ``PMI_RANK`` / ``PMIX_RANK``: under ``mpirun`` only rank 0
    records: other ranks run the handler with a throwaway DB and print no run JSON line.

Output and exit code:
    The handler's own output, then always, as the last line on stdout,
    ``MLFLOWLET_RUN_JSON=<the final run as one line of JSON>`` so a caller without a shared run
    DB can store it (:func:`read_run_json` parses it back). Exit code 0 when the run completed,
    1 when it failed or an output could not be written, 2 on bad usage (flags, spec).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from typing import Any

from .errors import ArtifactError, ConfigError, MlflowletError, ParameterError, RunError

RUN_JSON_MARKER = "MLFLOWLET_RUN_JSON="

__all__ = [
    "RUN_JSON_MARKER",
    "decode_collected",
    "export_metrics",
    "export_outputs",
    "main",
    "mpi_rank",
    "read_run_json",
    "run_entrypoint",
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlflowlet.entrypoint",
        description="Run one mlflowlet task or step in this process and record it.",
    )
    parser.add_argument(
        "--spec", help="run spec file (JSON or YAML); default MLFLOWLET_EXEC_CONFIG"
    )
    parser.add_argument("--handler", help="module:function or file.py:function")
    parser.add_argument("--script", help="a .py script or .ipynb notebook run as a whole")
    parser.add_argument("--artifact-path", help="where the run's artifacts are written")
    for flag, meta, text in (
        ("--param", "KEY=VALUE", "a parameter (JSON/Python literal, else string)"),
        ("--input", "KEY=PATH", "an input URL or local path"),
        ("--output", "KEY=PATH", "copy artifact KEY to PATH after the run"),
        ("--result", "KEY=PATH", "write result KEY to PATH after the run"),
        ("--result-json", "KEY=PATH", "write result KEY to PATH as JSON after the run"),
        ("--collected", "KEY", "param KEY is an aggregated JSON list: decode each item"),
    ):
        parser.add_argument(flag, action="append", default=[], metavar=meta, help=text)
    parser.add_argument(
        "--metrics", metavar="PATH", help="write the numeric results as JSON to PATH after the run"
    )
    parser.add_argument(
        "--state",
        help="the pipeline's final state as the engine reports it "
        "(exit handlers): sets param 'state' to completed/error",
    )
    return parser


def split_pairs(items: list[str], flag: str) -> dict[str, str]:
    """Split ``KEY=VALUE`` strings; raise ``ParameterError`` naming ``flag`` on a missing ``=``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"{flag} {item!r} is not KEY=VALUE (e.g. {flag} p1=5)")
        out[key.strip()] = value
    return out


def load_spec(path: str | None) -> Any:
    """Return the ``RunObject`` from a spec file, ``MLFLOWLET_EXEC_CONFIG``, or a new one."""
    from .context import with_exec_secrets
    from .model import RunObject

    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot read spec file {path!r}: {exc.strerror}") from None
        import yaml  # JSON is YAML too

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"spec file {path!r} is neither JSON nor YAML: {exc}") from None
        origin = f"spec file {path!r}"
    else:
        from .settings import get_settings

        text = get_settings().exec_config
        try:
            data = json.loads(text) if text else {}
        except ValueError as exc:
            raise ConfigError(f"MLFLOWLET_EXEC_CONFIG is not valid JSON: {exc}") from None
        origin = "MLFLOWLET_EXEC_CONFIG"
    if not isinstance(data, dict):
        raise ConfigError(f"{origin} must hold a run dict, got {type(data).__name__}")
    from pydantic import ValidationError

    try:
        run = RunObject.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ConfigError(f"{origin} is not a valid run: {where}: {first.get('msg')}") from None
    return with_exec_secrets(run)


def _apply_flags(run: Any, args: argparse.Namespace) -> dict[str, dict[str, str]]:
    from ._binding import parse_literal
    from .model import new_uid

    params = split_pairs(args.param, "--param")
    run.spec.params.update({k: parse_literal(v) for k, v in params.items()})
    for key in args.collected:
        if key not in run.spec.params:
            raise ParameterError(f"--collected {key}: no --param {key}=... (or spec param) given")
        run.spec.params[key] = decode_collected(key, run.spec.params[key])
    if args.state is not None:
        run.spec.params["state"] = engine_state(args.state)
    run.spec.inputs.update(
        {k: _input_path(v) for k, v in split_pairs(args.input, "--input").items()}
    )
    wanted = {
        "output": split_pairs(args.output, "--output"),
        "result": split_pairs(args.result, "--result"),
        "result_json": split_pairs(args.result_json, "--result-json"),
    }
    for key in [*wanted["output"], *wanted["result"], *wanted["result_json"]]:
        if key not in run.spec.outputs:
            run.spec.outputs.append(key)
    if args.artifact_path:
        run.spec.artifact_path = args.artifact_path
    if args.handler and args.script:
        raise ConfigError("give --handler or --script, not both")
    if args.script:
        run.spec.handler, run.spec.command = "", args.script
    elif args.handler:
        run.spec.handler = args.handler
    elif not run.spec.handler and ":" in run.spec.command and "://" not in run.spec.command:
        run.spec.handler = run.spec.command.split(" ", 1)[0]
    script = _script(run)
    if not run.spec.handler and not script:
        raise ConfigError(
            "no handler to run: pass --handler module:function (or file.py:function), "
            "--script file.py, or set spec.handler"
        )
    meta = run.metadata
    meta.uid = meta.uid or new_uid()
    if not meta.name:
        target = run.spec.handler or os.path.splitext(os.path.basename(script))[0]
        meta.name = target.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    if not meta.project:
        from .settings import get_settings

        meta.project = get_settings().project
    meta.labels.setdefault("kind", "entrypoint")
    run.status.state = "created"
    return wanted


def _script(run: Any) -> str:
    """Return the script (or notebook) the run executes as a whole, else ``''``."""
    first = (run.spec.command or "").split(" ", 1)[0]
    if run.spec.handler or "://" in first or not first.endswith((".py", ".ipynb")):
        return ""
    return first


def decode_collected(key: str, value: Any) -> list[Any]:
    """Return an engine-aggregated list with each string item decoded as JSON.

    The inverse of ``--result-json``: Argo aggregates a mapped task's output parameter as a JSON
    list of the raw texts (``["0.5", "2"]``), or of the values themselves when every
    item is a JSON object or array; either way the result is the list of the items' values.
    A string item that is not JSON (a producer that wrote plain text) is kept as it is.

    Raises:
        ParameterError: ``value`` is not a list (or JSON text of one).
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if not isinstance(value, list):
        raise ParameterError(
            f"--collected {key}: expected a JSON list (an aggregated output), "
            f"got {type(value).__name__} {str(value)[:60]!r}"
        )
    out: list[Any] = []
    for item in value:
        if isinstance(item, str):
            try:
                item = json.loads(item)
            except ValueError:
                pass
        out.append(item)
    return out


def _open_db() -> tuple[Any, Any]:
    """Return the run DB and a cleanup function (a throwaway DB when MLFLOWLET_DBPATH is unset)."""
    from .db import get_run_db
    from .settings import get_settings

    if get_settings().dbpath:
        return get_run_db(), lambda: None
    folder = tempfile.mkdtemp(prefix="mlflowlet-entrypoint-")
    os.environ["MLFLOWLET_DBPATH"] = folder  # so handler code calling get_run_db() agrees
    db: Any = get_run_db(folder, cached=False)

    def cleanup() -> None:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(db.path + suffix)
            except OSError:
                pass

    return db, cleanup


def run_entrypoint(run: Any, db: Any) -> Any:
    """Run ``run`` (its ``spec.handler``) in this process with the local runtime; return it.

    A ``@step`` handler runs its wrapped function (which stores the declared outputs), and a run
    with hyper-parameters runs all its iterations here and selects the best. Binding, coercion,
    the return value and error handling are the local runtime's, so a run behaves the same
    in-process and here.
    """
    from .runtimes.local import LocalRuntime

    command = (run.spec.command or "").split(" ", 1)[0]
    if command and not (command.endswith((".py", ".ipynb")) or ":" not in command):
        command = ""
    runtime = LocalRuntime(command)
    handler = _step_handler(run.spec.handler, command)  # None: the runtime resolves it (a script)
    if run.spec.hyper_params or run.spec.param_file:  # iterations run here, as they do locally
        index = os.environ.get("JOB_COMPLETION_INDEX", "").strip()
        if index.isdigit():  # one pod of an Indexed Job: only its own iteration
            return _run_indexed(runtime, run, handler, db, int(index))
        return runtime._run_iterations(run, handler, db)
    return runtime._execute(run, handler, db)


def _run_indexed(runtime: Any, run: Any, handler: Any, db: Any, index: int) -> Any:
    """Run iteration ``index + 1`` of the run's hyper-parameters (``JOB_COMPLETION_INDEX``)."""
    from . import hyper

    spec = run.spec
    combos = hyper.expand_iterations(
        spec.hyper_params or None,
        spec.strategy or None,
        spec.param_file or None,
        spec.max_iterations,
        spec.seed,
    )
    if index >= len(combos):
        raise ConfigError(
            f"JOB_COMPLETION_INDEX={index} but the spec has {len(combos)} iteration(s); "
            "the Job's completions must equal the number of iterations"
        )
    return runtime._execute(runtime._child(run, index + 1, combos[index]), handler, db)


def mpi_rank() -> int:
    """Return this process's MPI rank (0 when not under ``mpirun``)."""
    for name in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def _step_handler(name: str, command: str) -> Any:
    """Return the wrapped function of a ``@step`` (it stores the declared outputs), else None."""
    from ._binding import resolve_handler

    try:
        target = resolve_handler(name, command) if name else None
    except MlflowletError:
        return None  # the runtime resolves it again and records the error on the run
    handler = getattr(target, "handler", None)
    if hasattr(target, "spec") and callable(handler):
        return handler()
    return None


def engine_state(value: str) -> str:
    """Map an engine's final state to ``completed`` / ``error``, as a local exit handler sees it.

    Accepts Argo's ``{{workflow.status}}`` (``Succeeded``, ``Failed``, ``Error``) and KFP's
    final-status JSON (``{"state": "SUCCEEDED", ...}``).
    """
    text = value.strip()
    if text.startswith("{"):
        try:
            text = str(json.loads(text).get("state", text))
        except (ValueError, AttributeError):
            pass
    low = text.lower()
    if low in ("succeeded", "success", "completed"):
        return "completed"
    if low in ("failed", "error", "canceled", "cancelled", "aborted", "system_error"):
        return "error"
    return low


def export_outputs(
    run: Any,
    artifacts: dict[str, str],
    results: dict[str, str],
    json_results: dict[str, str] | None = None,
) -> None:
    """Copy artifact files and write result values to the paths asked for.

    Args:
        run: the finished ``RunObject``.
        artifacts: artifact key to target path (its file, or directory, is copied there).
        results: result key to target path (a string as is, other values as JSON).
        json_results: result key to target path, every value as JSON (strings quoted).

    Raises:
        ArtifactError: an artifact or result that the run does not have, or a path that cannot
            be written.
    """
    by_key = {a.get("key"): a for a in run.status.artifacts}
    for key, path in artifacts.items():
        art = by_key.get(key)
        if art is None:
            raise ArtifactError(
                f"run {run.metadata.name!r} logged no artifact {key!r} (--output {key}=...); "
                f"artifacts: {sorted(k for k in by_key if k)}"
            )
        _copy_artifact(key, art, path)
    wanted = [(k, p, False) for k, p in results.items()]
    wanted += [(k, p, True) for k, p in (json_results or {}).items()]
    for key, path, as_json in wanted:
        if key not in run.status.results:
            flag = "--result-json" if as_json else "--result"
            raise ArtifactError(
                f"run {run.metadata.name!r} logged no result {key!r} ({flag} {key}=...); "
                f"results: {sorted(run.status.results)}"
            )
        value = run.status.results[key]
        as_text = isinstance(value, str) and not as_json
        text = value if as_text else json.dumps(value, default=str)
        _write(path, text.encode("utf-8"), f"result {key!r}")


def export_metrics(run: Any, path: str) -> None:
    """Write the run's numeric results (not booleans) to ``path`` as one JSON object."""
    numeric = {
        key: value
        for key, value in sorted(run.status.results.items())
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    _write(path, json.dumps(numeric, sort_keys=True).encode("utf-8"), "metrics")


def _input_path(value: str) -> str:
    """``DIR/`` → the single file in ``DIR`` (compiled pipelines pass artifacts as folders)."""
    if not value.endswith(("/", os.sep)) or not os.path.isdir(value):
        return value
    entries = os.listdir(value)
    if len(entries) == 1 and os.path.isfile(os.path.join(value, entries[0])):
        return os.path.join(value, entries[0])
    return value.rstrip("/" + os.sep)


def _copy_artifact(key: str, art: dict[str, Any], path: str) -> None:
    uri = str(art.get("uri") or art.get("target_path") or "")
    local = uri[len("file://") :] if uri.startswith("file://") else uri
    if path.endswith(("/", os.sep)):  # into that folder, keeping the file's name and suffix
        path = os.path.join(path, os.path.basename(local.rstrip("/")) or key)
    if local and "://" not in local and os.path.isdir(local):
        try:
            if os.path.exists(path):
                shutil.rmtree(path)
            shutil.copytree(local, path)
        except OSError as exc:
            raise ArtifactError(f"cannot copy artifact {key!r} to {path!r}: {exc}") from None
        return
    from .datastore import get_dataitem

    try:
        data = get_dataitem(uri, key=key).get()
    except MlflowletError as exc:
        raise ArtifactError(f"cannot read artifact {key!r} at {uri!r}: {exc}") from None
    _write(path, data, f"artifact {key!r}")


def _write(path: str, data: bytes, what: str) -> None:
    try:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise ArtifactError(f"cannot write {what} to {path!r}: {exc.strerror or exc}") from None


def read_run_json(output: str | bytes) -> dict[str, Any]:
    """Return the run dict from an entrypoint's output (its last ``MLFLOWLET_RUN_JSON=`` line).

    Raises:
        RunError: the output has no such line, or the line is not a JSON run.
    """
    if isinstance(output, bytes):
        output = output.decode("utf-8", "replace")
    lines = [ln for ln in output.splitlines() if ln.startswith(RUN_JSON_MARKER)]
    if not lines:
        raise RunError(
            f"the entrypoint printed no {RUN_JSON_MARKER} line: it did not finish, or its "
            "output was cut; see its log"
        )
    text = lines[-1][len(RUN_JSON_MARKER) :]
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RunError(
            f"the entrypoint's {RUN_JSON_MARKER} line is not JSON ({exc}): {text[:60]!r}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
        raise RunError(f"the entrypoint's {RUN_JSON_MARKER} line holds no run: {text[:60]!r}")
    return data


def _finish_failed_export(run: Any, db: Any, exc: Exception) -> None:
    from .model import now_iso

    run.status.state = "error"
    run.status.error = str(exc)
    run.status.end_time = run.status.end_time or now_iso()
    meta = run.metadata
    db.store_log(meta.uid, meta.project, f"{exc}\n".encode())
    db.store_run(run.to_dict(), meta.uid, meta.project, meta.iteration)


def _stored(run: Any, db: Any) -> dict[str, Any]:
    """Return the run as the DB holds it (secrets masked), else as it is in memory."""
    meta = run.metadata
    try:
        return db.read_run(meta.uid, meta.project, meta.iteration)
    except MlflowletError:
        return run.to_dict()


def main(argv: list[str] | None = None) -> int:
    """Run the entrypoint with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = _parser().parse_args(argv)
    try:
        run = load_spec(args.spec)
        wanted = _apply_flags(run, args)
    except MlflowletError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rank = mpi_rank()
    if rank:  # only rank 0 records the run; the others still run the handler (collectives)
        os.environ.pop("MLFLOWLET_DBPATH", None)
    db, cleanup = _open_db()
    code = 0
    try:
        try:
            from ._interrupt import guard

            with guard():  # SIGTERM (a pod deleted, a parent ending) records the run aborted
                final = run_entrypoint(run, db)
        except KeyboardInterrupt as exc:
            final, code = run, getattr(exc, "exit_code", 130)
        if final.state == "completed" and any(wanted.values()):
            try:
                export_outputs(final, wanted["output"], wanted["result"], wanted["result_json"])
            except ArtifactError as exc:
                print(f"error: {exc}", file=sys.stderr)
                _finish_failed_export(final, db, exc)
        if final.state == "completed" and args.metrics:
            try:
                export_metrics(final, args.metrics)
            except ArtifactError as exc:
                print(f"error: {exc}", file=sys.stderr)
                _finish_failed_export(final, db, exc)
        if final.state == "error" and final.status.error:
            last = final.status.error.strip().splitlines()[-1:]
            print(
                f"error: run {final.metadata.name!r} failed: {last[0] if last else ''}",
                file=sys.stderr,
            )
        record = _stored(final, db)
    finally:
        cleanup()
    sys.stderr.flush()
    if not rank:
        sys.stdout.write(
            RUN_JSON_MARKER + json.dumps(record, separators=(",", ":"), default=str) + "\n"
        )
    sys.stdout.flush()
    return code or (0 if final.state == "completed" else 1)


if __name__ == "__main__":
    sys.exit(main())
