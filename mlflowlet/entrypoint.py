"""Run one task or pipeline step in this process: ``python -m mlflowlet.entrypoint``.

The process boundary every out-of-process runtime reuses (subprocess, Kubernetes jobs, KFP and
Argo steps). It needs nothing from the process that started it, so a container can call it
directly. The flags below are a stable interface: compiled pipelines call them.

Usage::

    python -m mlflowlet.entrypoint [--spec FILE] [--handler module:function | file.py:function
        | --script file.py|file.ipynb] [--artifact-path PATH]
        [--param KEY=VALUE ...] [--collected KEY ...] [--input[-url] KEY=PATH ...]
        [--output KEY=PATH ...] [--result KEY=PATH ...] [--result-json KEY=PATH ...]
        [--metrics PATH] [--state STATE]

Flags:
    --spec FILE: the run spec, a JSON or YAML file holding a run (or task) dict. Default: the
        JSON in ``MLFLOWLET_EXEC_CONFIG``; with neither, a new run.
    --handler H: the function to run, ``module:function`` or ``path/file.py:function``
        (overrides the spec's handler). A bare name is looked up in the spec's ``command`` file.
    --handler-pickle PAYLOAD: the handler itself, pickled by value with the Python version
        that pickled it (a step defined in a notebook or ``__main__``; :mod:`mlflowlet._pickled`):
        another Python minor version is refused (exit 2). ``--handler`` still names it.
    --script FILE: run a whole script (``.py``) or notebook (``.ipynb``, converted, its
        ``parameters`` cell getting the params) as ``__main__``, in the run: its
        ``get_or_create_ctx()`` returns the run's context (no handler needed). Also what a spec
        whose ``command`` is a ``.py``/``.ipynb`` file and that has no handler runs.
    --artifact-path PATH: where the run's artifacts are written (overrides the spec's).
    --param KEY=VALUE: a parameter; the value is parsed as a JSON/Python literal, else kept as a
        string. ``KEY:TYPE=VALUE`` reads the value as that declared type instead (``str`` as it
        is, ``int``, ``float``, ``bool``, ``json``, ``list[int]``..., ``items``; see
        :mod:`mlflowlet._wire`): compiled pipelines pass every value this way, so it keeps its
        type. Overrides the spec. Repeatable.
    --collected KEY: parameter KEY is a list collected from a mapped step, given as the JSON
        list an engine aggregates (Argo: one string per item, or the items themselves when
        every one is a JSON object or array). Each string item is decoded as the JSON that
        ``--result-json`` wrote, so items keep their types (numbers stay numbers). Repeatable.
    --input KEY=PATH: an input URL or local path (e.g. where an orchestrator put an upstream
        artifact). ``PATH/`` (a trailing slash) names a directory: the one file in it, so the
        file keeps its name and format suffix; ``--input-url`` takes it as is. Repeatable.
    --output KEY=PATH: after the run, copy artifact KEY's file (or directory) to PATH, creating
        its parent directories; ``PATH/`` copies the file into that directory under its own
        name. Repeatable.
    --output-digest KEY=PATH: after the run, write the sha256 of artifact KEY's bytes (as
        copied by ``--output KEY=...``) to PATH: an engine's cache keys a consumer on it.
    --result KEY=PATH: after the run, write result KEY to PATH: a string as it is, any other
        value as JSON. ``KEY:FORM=PATH`` writes it in that form instead (``json``, ``item``,
        ``items``, ``when``; see :mod:`mlflowlet._wire`). Repeatable.
    --result-json KEY=PATH: like ``--result``, but always JSON (a string too, quoted), so a
        consumer's ``--collected`` decodes every item to its original value. Repeatable.
    --metrics PATH: after the run, write its numeric results as one JSON object (``{"accuracy":
        0.9}``; booleans left out) to PATH, e.g. a KFP ``system.Metrics`` output artifact.
    --item-field KEY=FIELD: parameter KEY is a map's element (a dict): it becomes the element's
        FIELD (``x=item["FIELD"]`` in ``step.map``). Repeatable. ``--item-output KEY=NAME``:
        KEY is one item of Argo's aggregated outputs: it becomes output NAME's value decoded.
    --failures JSON: for an exit handler: the engine's failed nodes (Argo's
        ``{{workflow.failures}}``) become parameter ``failures``, the sorted names of the failed
        steps (``--failure-names``: a JSON object, task name -> step name).
    --final-status KEY=TEXT: for an exit handler: the engine's final status becomes param KEY.
    --state STATE: for an exit handler: the engine's final state (``Succeeded``, ``Failed``, a
        KFP final-status JSON) becomes parameter ``state`` = ``completed`` or ``error``.
    --config-sha256 HEX: the sha256 of ``MLFLOWLET_EXEC_CONFIG`` the step was compiled with; a
        different config is refused (exit 2). In the arguments, it keys an engine's cache
        (KFP) on the run spec (hyper-parameters, labels) the environment carries.

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
    In a Kubernetes pod (``/dev/termination-log`` exists, or ``MLFLOWLET_TERMINATION_LOG`` names
    a file) the run's outcome is written there as compact JSON under 4 KiB
    (:mod:`mlflowlet._termlog`). The handler's own output, then always, as the last line on stdout
    and on a line of its own (a newline is written first when the output did not end with one),
    ``MLFLOWLET_RUN_JSON=<the final run as one line of JSON>`` so a caller without a shared run
    DB can store it (:func:`read_run_json` parses it back). Exit code 0 when the run completed,
    1 when it failed or an output could not be written, 2 on bad usage (flags, spec).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Any

from ._ctx_workflow import take_workflow
from ._final_status import exit_inputs
from ._wire import (
    PARAM_TYPES,
    RESULT_FORMS,
    RUN_JSON_MARKER,
    decode_collected,
    decode_param,
    export_kfp_metadata,
    export_metrics,
    export_outputs,
    input_path,
    item_field,
    read_run_json,
    run_json_line,
    split_typed,
)
from .errors import ArtifactError, ConfigError, MlflowletError, ParameterError

if TYPE_CHECKING:
    from .db.base import RunDB

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
    parser.add_argument("--handler-pickle", metavar="PAYLOAD", help="the handler, pickled")
    parser.add_argument("--script", help="a .py script or .ipynb notebook run as a whole")
    parser.add_argument("--artifact-path", help="where the run's artifacts are written")
    for flag, meta, text in (
        ("--param", "KEY=VALUE", "a parameter (JSON/Python literal, else string)"),
        ("--input", "KEY=PATH", "an input URL or local path"),
        ("--input-url", "KEY=URL", "an input URL, taken as it is"),
        ("--output", "KEY=PATH", "copy artifact KEY to PATH after the run"),
        ("--result", "KEY=PATH", "write result KEY to PATH after the run"),
        ("--result-json", "KEY=PATH", "write result KEY to PATH as JSON after the run"),
        ("--output-digest", "KEY=PATH", "write the sha256 of artifact KEY to PATH"),
        ("--collected", "KEY", "param KEY is an aggregated JSON list: decode each item"),
        ("--item-field", "KEY=FIELD", "param KEY (a map's element, a dict) becomes its FIELD"),
        ("--item-output", "KEY=NAME", "param KEY (an aggregated outputs item) becomes NAME's"),
        ("--final-status", "KEY=TEXT", "exit handlers: the engine's final status as param KEY"),
    ):
        parser.add_argument(flag, action="append", default=[], metavar=meta, help=text)
    parser.add_argument(
        "--metrics", metavar="PATH", help="write the numeric results as JSON to PATH after the run"
    )
    parser.add_argument("--kfp-executor-input", metavar="JSON", help="KFP: metrics metadata")
    parser.add_argument(
        "--state",
        help="the pipeline's final state as the engine reports it "
        "(exit handlers): sets param 'state' to completed/error",
    )
    parser.add_argument(
        "--failures",
        help="the engine's failed nodes (Argo {{workflow.failures}}): param 'failures'",
    )
    parser.add_argument(
        "--failure-names", default="{}", metavar="JSON", help="task name -> step name, as JSON"
    )
    parser.add_argument(
        "--config-sha256", metavar="HEX", help="refuse an MLFLOWLET_EXEC_CONFIG with another hash"
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


def _apply_flags(run: Any, args: argparse.Namespace) -> dict[str, Any]:
    from .model import new_uid

    for key, text in split_pairs(args.param, "--param").items():
        name, typ = split_typed(key, "--param", PARAM_TYPES)
        run.spec.params[name] = decode_param(name, typ, text)
    for key in args.collected:
        if key not in run.spec.params:
            raise ParameterError(f"--collected {key}: no --param {key}=... (or spec param) given")
        run.spec.params[key] = decode_collected(key, run.spec.params[key])
    for flag, pairs in (("--item-field", args.item_field), ("--item-output", args.item_output)):
        for key, name in split_pairs(pairs, flag).items():
            run.spec.params[key] = item_field(flag, key, name, run.spec.params.get(key))
    run.spec.params.update(exit_inputs(args, split_pairs(args.final_status, "--final-status")))
    take_workflow(run)  # the engine's workflow__* params become context.workflow
    inputs = {k: input_path(v) for k, v in split_pairs(args.input, "--input").items()}
    run.spec.inputs.update(inputs, **split_pairs(args.input_url, "--input-url"))
    results: dict[tuple[str, str], str] = {}
    for key, path in split_pairs(args.result, "--result").items():
        results[split_typed(key, "--result", RESULT_FORMS)] = path
    for key, path in split_pairs(args.result_json, "--result-json").items():
        results[(key, "json")] = path
    wanted: dict[str, Any] = {
        "output": split_pairs(args.output, "--output"),
        "result": results,
        "digest": split_pairs(args.output_digest, "--output-digest"),
    }
    for key in [*wanted["output"], *(name for name, _form in results)]:
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


def _open_db() -> tuple[Any, Any]:
    """Return the run DB and a cleanup function (a throwaway DB when MLFLOWLET_DBPATH is unset)."""
    from .db import get_run_db
    from .settings import get_settings

    if get_settings().dbpath:
        return get_run_db(), lambda: None
    folder = tempfile.mkdtemp(prefix="mlflowlet-entrypoint-")
    os.environ["MLFLOWLET_DBPATH"] = folder  # so handler code calling get_run_db() agrees
    db: Any = get_run_db(folder, cached=False)  # a SQLiteRunDB: its file is removed after

    def cleanup() -> None:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(db.path + suffix)
            except OSError:
                pass

    return db, cleanup


def run_entrypoint(run: Any, db: RunDB, target: Any = None) -> Any:
    """Run ``run`` (its ``spec.handler``, or ``target``) in this process locally; return it.

    A ``@step`` handler runs its wrapped function (which stores the declared outputs), and a run
    with hyper-parameters runs all its iterations here and selects the best. Binding, coercion,
    the return value and error handling are the local runtime's, so a run behaves the same
    in-process and here.
    """
    from .hyper import SweepOptions
    from .runtimes.local import LocalRuntime

    command = (run.spec.command or "").split(" ", 1)[0]
    if command and not (command.endswith((".py", ".ipynb")) or ":" not in command):
        command = ""
    runtime = LocalRuntime(command)
    # None: the runtime resolves it (a script); target: a handler unpickled from the arguments
    handler = _step_handler(run.spec.handler, command) if target is None else _wrapped(target)
    index = os.environ.get("JOB_COMPLETION_INDEX", "").strip()
    if index.isdigit() and SweepOptions.of(run.spec).sweeps:
        # one pod of an Indexed Job: only its own iteration (no summary; the submitter selects)
        return runtime.execute(run, handler, db, iteration=int(index) + 1)
    return runtime.execute(run, handler, db)  # a sweep runs all its iterations here


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
    handler = _wrapped(target)
    return handler if handler is not target else None


def _wrapped(target: Any) -> Any:
    """Return what the runtime calls for ``target``: a ``@step``'s wrapped function, else it."""
    handler = getattr(target, "handler", None)
    return handler() if hasattr(target, "spec") and callable(handler) else target


def _unpickle(payload: str | None, name: str) -> Any:
    """Return the handler ``--handler-pickle`` carries (None without one); checks its Python."""
    if not payload:
        return None
    from ._pickled import decode_handler

    return decode_handler(payload, name)


def _finish_failed_export(run: Any, db: RunDB, exc: Exception) -> None:
    from .model import now_iso

    run.status.state = "error"
    run.status.error = str(exc)
    run.status.end_time = run.status.end_time or now_iso()
    meta = run.metadata
    db.store_log(meta.uid, meta.project, f"{exc}\n".encode())
    db.store_run(run.to_dict(), meta.uid, meta.project, meta.iteration)


def _stored(run: Any, db: RunDB) -> dict[str, Any]:
    """Return the run as the DB holds it (secrets masked), else as it is in memory."""
    meta = run.metadata
    try:
        return db.read_run(meta.uid, meta.project, meta.iteration)
    except MlflowletError:
        return run.to_dict()


class _Tail:
    """Wraps stdout to remember whether what was written so far ends a line."""

    def __init__(self, stream: Any) -> None:
        self._stream, self.at_line_start = stream, True

    def write(self, text: str) -> int:
        if text:
            self.at_line_start = text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _check_config(expected: str | None) -> None:
    """Refuse a run spec other than the one the step was compiled with (``--config-sha256``)."""
    if not expected:
        return
    import hashlib

    from .settings import get_settings

    got = hashlib.sha256(get_settings().exec_config.encode("utf-8")).hexdigest()
    if got != expected:
        raise ConfigError(
            f"MLFLOWLET_EXEC_CONFIG has sha256 {got[:12]}..., but this step was compiled with "
            f"{expected[:12]}...; recompile the pipeline instead of editing its environment"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the entrypoint with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = _parser().parse_args(argv)
    try:
        _check_config(args.config_sha256)
        run = load_spec(args.spec)
        wanted = _apply_flags(run, args)
        target = _unpickle(args.handler_pickle, run.spec.handler)
    except MlflowletError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rank = mpi_rank()
    if rank:  # only rank 0 records the run; the others still run the handler (collectives)
        os.environ.pop("MLFLOWLET_DBPATH", None)
    db, cleanup = _open_db()
    from ._fdcapture import capture

    capture.last_byte.pop(1, None)
    stdout = sys.stdout
    tail = sys.stdout = _Tail(stdout)
    code = 0
    try:
        try:
            from ._interrupt import guard

            with guard():  # SIGTERM (a pod deleted, a parent ending) records the run aborted
                final = run_entrypoint(run, db, target)
        except KeyboardInterrupt as exc:
            final, code = run, getattr(exc, "exit_code", 130)
        _export(final, db, wanted, args)
        if final.state == "error" and final.status.error:
            last = final.status.error.strip().splitlines()[-1:]
            print(
                f"error: run {final.metadata.name!r} failed: {last[0] if last else ''}",
                file=sys.stderr,
            )
        record = _stored(final, db)
    finally:
        cleanup()
        sys.stdout = stdout
    sys.stderr.flush()
    if not rank:  # on a line of its own, even after output that did not end one
        from ._termlog import write_termination_log

        write_termination_log(record)  # in a pod: the outcome survives a lost log too
        last = capture.last_byte.get(1)  # fd-level capture saw the run's output, if active
        ends_line = last == b"\n" if last is not None else tail.at_line_start
        stdout.write(("" if ends_line else "\n") + run_json_line(record))
    stdout.flush()
    return code or (0 if final.state == "completed" else 1)


def _export(final: Any, db: RunDB, wanted: dict[str, Any], args: Any) -> None:
    """Write the outputs and metrics a completed run was asked for (a failure fails the run)."""
    out = wanted["output"], wanted["result"], None, wanted["digest"]
    steps: list[tuple[Any, Any]] = [(export_outputs, out if any(wanted.values()) else None)]
    steps += [(export_metrics, args.metrics), (export_kfp_metadata, args.kfp_executor_input)]
    for call, value in steps:
        if final.state == "completed" and value:
            try:
                call(final, *value) if isinstance(value, tuple) else call(final, value)
            except ArtifactError as exc:
                print(f"error: {exc}", file=sys.stderr)
                _finish_failed_export(final, db, exc)


if __name__ == "__main__":
    sys.exit(main())
