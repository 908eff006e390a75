"""The text protocol between a run's process and whoever started it (a runtime, an engine, a check).

One place for how values cross a process boundary as text, so a value keeps its type:

* **Parameters** (``--param KEY:TYPE=TEXT``): the declared type says how to read the text an
  engine substituted. ``str`` is taken as it is (``"1.10"`` stays ``"1.10"``); ``int``,
  ``float`` and ``bool`` are read strictly; ``json`` is exact JSON (numbers inside containers
  keep int vs float); ``list[int]`` (``str``, ``float``, ``bool``) is a JSON list whose items
  are read as that type (KFP's own list parameters carry every number as a double); ``items``
  is an engine-aggregated list of ``item`` texts (a collected result). Without ``:TYPE``
  the text is read as a JSON/Python literal, else kept as a string (the CLI's rule).
* **Results** (``--result KEY:FORM=PATH``): ``text`` (a string as it is, anything else as JSON;
  what typed KFP outputs parse), ``json``, ``item`` (JSON text wrapped as a JSON string, so an
  engine that aggregates a fan-out keeps every item's text untouched: Argo parses items that
  are JSON objects and re-marshals their numbers), ``items`` (a list as the JSON list of its
  items' JSON texts, so each fan-out item arrives as the exact JSON of one element), ``when``
  and ``when-bool`` (a literal of Argo's ``when`` expression language, govaluate, that compares
  there as the value compares in Python: see :func:`mlflowlet._govaluate.when_literal`), and
  ``if-str`` / ``if-float`` / ``if-bool`` (KFP's typed condition operand, comparing in CEL as
  the value compares in Python: :func:`mlflowlet._govaluate.kfp_condition_text`).
* **Braces**: no ``{{`` from a value ever reaches an engine. Argo substitutes ``{{...}}`` tags
  inside parameter values once more (its template replace covers ``inputs.parameters[].value``:
  argo-workflows #1535, #13890) and KFP's launcher replaces placeholders in every argument, a
  substituted value included. So every JSON text written (:func:`wire_json`) has each ``{``
  inside a string as ``\u007b`` (the same value decoded), and a ``str`` holding ``{{`` (or
  ending in ``{``) travels as :data:`BRACED` + its JSON (:func:`wire_text`, read back by
  :func:`unwire_text`).
* **Files**: artifacts and results are written to the paths an engine names (``--output``,
  ``--result``); an artifact travels as a folder holding its one file (``PATH/``).
* **The run record**: the last line ``MLFLOWLET_RUN_JSON=<run as one line of JSON>`` on stdout.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from typing import Any

from .errors import ArtifactError, MlflowletError, ParameterError, RunError

RUN_JSON_MARKER = "MLFLOWLET_RUN_JSON="
SCALARS = ("str", "int", "float", "bool")
PARAM_TYPES = (*SCALARS, "json", "items", *(f"list[{t}]" for t in SCALARS))
RESULT_FORMS: tuple[str, ...] = ("text", "json", "item", "items", "when", "when-bool", "if-str")
RESULT_FORMS += ("if-float", "if-bool")
MAX_ARG = 131072  # Linux's MAX_ARG_STRLEN: the bytes of one exec argument (its NUL included)
NOT_A_LIST = "mlflowlet:not-a-list:"  # the one item of ``items`` written for a non-list
_INT = re.compile(r"^[+-]?\d+$")
BRACED = "mlflowlet:json:"  # a str written as its wire JSON: it held text an engine substitutes
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def wire_json(value: Any) -> str:
    r"""Return ``value``'s JSON text with every ``{`` inside a string as ``\u007b``.

    The text decodes to the same value, and holds no ``{{`` an engine would substitute.
    """
    text = json.dumps(value, default=str)
    if "{" not in text:
        return text
    return _JSON_STRING.sub(lambda m: m.group(0).replace("{", "\\u007b"), text)


def wire_text(value: str) -> str:
    """Return a ``str`` as it crosses an engine: itself, or :data:`BRACED` + :func:`wire_json`.

    A string holding ``{{`` (or ending in ``{``: the next text could make one) would be
    substituted by Argo or KFP; so would one already looking like this form.
    """
    if "{{" in value or value.endswith("{") or value.startswith(BRACED):
        return BRACED + wire_json(value)
    return value


def unwire_text(text: str) -> Any:
    """Return the value :func:`wire_text` wrote as ``text`` (other text as it is)."""
    if text.startswith(BRACED):
        try:
            return json.loads(text[len(BRACED) :])
        except ValueError:
            return text
    return text


def split_typed(key: str, flag: str, choices: tuple[str, ...]) -> tuple[str, str]:
    """Split ``NAME:TYPE`` into ``(NAME, TYPE)`` (``TYPE`` ``''`` when absent).

    Raises:
        ParameterError: an unknown type (names ``flag`` and the choices).
    """
    name, sep, typ = key.partition(":")
    if sep and typ not in choices:
        raise ParameterError(f"{flag} {key}=...: unknown type {typ!r}; use one of {list(choices)}")
    return name.strip(), typ


def decode_param(name: str, typ: str, text: str) -> Any:
    """Return parameter ``name`` read from ``text`` as declared type ``typ`` (see module doc).

    Raises:
        ParameterError: the text is not a value of that type (names the parameter and type).
    """
    if text.startswith(NOT_A_LIST):
        raise ParameterError(
            f"parameter {name!r} fans out over {text[len(NOT_A_LIST) :]}, which is not a list; "
            "a map needs a list (return one from the producing step)"
        )
    if not typ:  # the CLI's rule; a str written as its JSON (see wire_text) is that str
        from ._coerce import parse_cli

        return unwire_text(text) if text.startswith(BRACED) else parse_cli(text)
    try:
        if typ == "str":
            return unwire_text(text)
        if typ in ("json", "items") or typ.startswith("list["):
            value = json.loads(text)
            if typ == "items":
                return _items(value)
            return _list_of(typ[5:-1], value) if typ.startswith("list[") else value
        return _scalar(typ, text)
    except (ValueError, TypeError) as exc:
        raise ParameterError(
            f"parameter {name!r} is declared {typ} but got {text[:60]!r} ({exc})"
        ) from None


def _scalar(typ: str, value: Any) -> Any:
    if typ == "str":  # an item of a list[str] (see wire_text: Argo carries them so)
        if not isinstance(value, str):
            raise TypeError(f"{value!r} is not a string")
        return unwire_text(value)
    if typ == "bool":
        low = str(value).strip().lower() if not isinstance(value, bool) else str(value).lower()
        if low not in ("true", "false"):
            raise ValueError("not true/false")
        return low == "true"
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is a bool")
    if typ == "float":
        return float(value)
    if isinstance(value, str) and _INT.match(value.strip()):
        return int(value)
    number = float(value)  # KFP carries integers as doubles: 4.0 is the integer 4
    if not number.is_integer():
        raise ValueError(f"{value!r} is not an integer")
    return int(number)


def _list_of(typ: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"a {type(value).__name__}, not a list")
    return [_scalar(typ, item) for item in value]


def _items(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"a {type(value).__name__}, not an aggregated list")
    return [json.loads(json.loads(item)) if isinstance(item, str) else item for item in value]


def encode_result(value: Any, form: str) -> str:
    """Return the text a result is written as for ``form`` (see the module docstring)."""
    if form == "text":
        return wire_text(value) if isinstance(value, str) else wire_json(value)
    if form == "item":
        return json.dumps(wire_json(value))
    if form == "items":
        if isinstance(value, list):
            return json.dumps([wire_json(item) for item in value])
        shown = f"a {type(value).__name__} {str(value)[:60]!r}"
        return json.dumps([NOT_A_LIST + shown])
    if form in ("when", "when-bool"):
        from ._govaluate import when_literal

        return when_literal(value, booleans=form == "when-bool")
    if form.startswith("if-"):
        from ._govaluate import kfp_condition_text

        return kfp_condition_text(value, form[3:])
    return wire_json(value)


def item_field(flag: str, key: str, name: str, element: Any) -> Any:
    """Return param ``key``'s value from its map element (``--item-field`` / ``--item-output``).

    ``--item-field``: the element is a dict, the value its ``name`` field. ``--item-output``:
    the element is one item of Argo's aggregated outputs of a map (``{{tasks.X.outputs.
    parameters}}``: output name -> its text, each written ``--result KEY:item``), the value
    output ``name``'s text decoded back to the result.

    Raises:
        ParameterError: the element is no dict or lacks ``name`` (names the flag and item).
    """
    if not isinstance(element, dict) or name not in element:
        what = f"has no key {name!r}" if isinstance(element, dict) else "is not a dict"
        raise ParameterError(f"{flag} {key}={name}: the item ({element!r:.60}) {what}")
    if flag == "--item-field":
        return element[name]
    try:
        return json.loads(json.loads(element[name]))
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"{flag} {key}={name}: {element[name]!r:.60} is no item ({exc})"
        ) from None


def decode_collected(key: str, value: Any) -> list[Any]:
    """Return an engine-aggregated list with each string item decoded as JSON (``--collected``).

    Argo aggregates a mapped task's output parameter as a JSON list of the raw texts
    (``["0.5", "2"]``), or of the values themselves when every item is a JSON object or array.
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
        if isinstance(item, str) and item.startswith(BRACED):
            item = unwire_text(item)
        elif isinstance(item, str):
            try:
                item = json.loads(item)
            except ValueError:
                pass
        out.append(item)
    return out


def run_json_line(record: dict[str, Any]) -> str:
    """Return the run-record line (marker, compact JSON, newline)."""
    return RUN_JSON_MARKER + json.dumps(record, separators=(",", ":"), default=str) + "\n"


def read_run_json(output: str | bytes) -> dict[str, Any]:
    """Return the run dict from a process's output: its last ``MLFLOWLET_RUN_JSON=`` record.

    The record is found even when earlier output without a trailing newline shares its line.

    Raises:
        RunError: the output has no such record, or the record is not a JSON run.
    """
    if isinstance(output, bytes):
        output = output.decode("utf-8", "replace")
    at = output.rfind(RUN_JSON_MARKER)
    if at < 0:
        raise RunError(
            f"the entrypoint printed no {RUN_JSON_MARKER} line: it did not finish, or its "
            "output was cut; see its log"
        )
    text = output[at + len(RUN_JSON_MARKER) :].split("\n", 1)[0].rstrip("\r")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RunError(
            f"the entrypoint's {RUN_JSON_MARKER} line is not JSON ({exc}): {text[:60]!r}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
        raise RunError(f"the entrypoint's {RUN_JSON_MARKER} line holds no run: {text[:60]!r}")
    return data


def export_outputs(
    run: Any,
    artifacts: dict[str, str],
    results: dict[str, str] | dict[tuple[str, str], str],
    json_results: dict[str, str] | None = None,
    digests: dict[str, str] | None = None,
) -> None:
    """Copy artifact files and write result values to the paths asked for.

    Args:
        run: the finished ``RunObject``.
        artifacts: artifact key to target path (its file, or directory, is copied there).
        results: result key (or ``(key, form)``, see :mod:`mlflowlet._wire`) to target path;
            a bare key is written as ``text`` (a string as is, other values as JSON).
        json_results: result key to target path, every value as JSON (strings quoted).
        digests: artifact key to a path for the sha256 of its bytes (an engine keys its cache
            on it); the artifact must be among ``artifacts``.

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
    for key, path in (digests or {}).items():
        if key not in artifacts:
            raise ArtifactError(f"--output-digest {key}=...: give --output {key}=... too")
        _write(path, digest(artifacts[key].rstrip("/" + os.sep)).encode(), f"digest of {key!r}")
    wanted = [((k, "text") if isinstance(k, str) else k, p) for k, p in results.items()]
    wanted += [((k, "json"), p) for k, p in (json_results or {}).items()]
    for (key, form), path in wanted:
        if key not in run.status.results:
            raise ArtifactError(
                f"run {run.metadata.name!r} logged no result {key!r} (--result {key}:"
                f"{form or 'text'}=...); results: {sorted(run.status.results)}"
            )
        try:
            text = encode_result(run.status.results[key], form or "text")
        except ValueError as exc:  # a condition's operand Argo cannot compare exactly
            raise ArtifactError(f"result {key!r} (--result {key}:{form}=...) {exc}") from None
        if len(text.encode("utf-8")) > MAX_ARG - 1024:  # room for the consumer's --param flag
            raise ArtifactError(
                f"result {key!r} is {len(text.encode('utf-8'))} bytes as text, over the "
                f"{MAX_ARG // 1024 - 1} KiB a compiled step passes in one argument (Linux's "
                "MAX_ARG_STRLEN); pass it as an artifact (context.log_artifact)"
            )
        _write(path, text.encode("utf-8"), f"result {key!r}")


def export_metrics(run: Any, path: str) -> None:
    """Write the run's numeric results (not booleans) to ``path`` as one JSON object."""
    numeric = {
        key: value
        for key, value in sorted(run.status.results.items())
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    _write(path, json.dumps(numeric, sort_keys=True).encode("utf-8"), "metrics")


def export_kfp_metadata(run: Any, executor_input: str) -> None:
    """Write the run's numeric results as the metadata of its KFP ``system.Metrics`` outputs.

    KFP shows a step's metrics from that artifact's metadata, which its launcher merges from
    the executor output file (``ExecutorInput.outputs.outputFile``, read as an
    ``ExecutorOutput`` after the container ends: backend/src/v2/component/launcher_v2.go
    ``getExecutorOutputFile``/``mergeRuntimeArtifacts``; each metadata key becomes a metric,
    which must be a number). ``executor_input`` is the ``{{$}}`` placeholder's JSON. Values
    JSON cannot carry (NaN, infinities) are left out: the launcher would refuse the file.
    """
    import math

    try:
        outputs = json.loads(executor_input).get("outputs") or {}
    except (ValueError, AttributeError):
        raise ArtifactError("--kfp-executor-input is not KFP's executor input JSON") from None
    names = [
        name
        for name, listed in (outputs.get("artifacts") or {}).items()
        for art in (listed.get("artifacts") or [])[:1]
        if (art.get("type") or {}).get("schemaTitle") == "system.Metrics"
    ]
    if not names or not outputs.get("outputFile"):
        return
    metadata = {
        key: value
        for key, value in sorted(run.status.results.items())
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }
    doc = {"artifacts": {name: {"artifacts": [{"metadata": metadata}]} for name in names}}
    path = str(outputs["outputFile"])
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    _write(path, json.dumps(doc, sort_keys=True).encode("utf-8"), "KFP executor output")


def input_path(value: str) -> str:
    """``DIR/`` → the single file, or directory, in ``DIR``.

    Compiled pipelines pass an artifact as a folder holding its file or directory under its
    own name.
    """
    if not value.endswith(("/", os.sep)) or not os.path.isdir(value):
        return value
    entries = os.listdir(value)
    if len(entries) == 1 and not os.path.islink(os.path.join(value, entries[0])):
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

    if art.get("format") == "dir":  # a directory version in a remote store: fetch it whole
        try:
            fetched = get_dataitem(uri, key=key, artifact=art).local()
            if os.path.exists(path):
                shutil.rmtree(path)
            shutil.copytree(fetched, path)
        except (MlflowletError, OSError) as exc:
            raise ArtifactError(f"cannot copy artifact {key!r} to {path!r}: {exc}") from None
        return
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


def digest(path: str) -> str:
    """Return the sha256 of a file's bytes.

    A folder holding one entry (how compiled pipelines pass an artifact: its file or directory
    in a folder) digests as that entry; another folder as the sorted names and digests of its
    entries.
    """
    if os.path.isdir(path):
        entries = sorted(os.listdir(path))
        if len(entries) == 1:
            return digest(os.path.join(path, entries[0]))
        h = hashlib.sha256()
        for entry in entries:
            h.update(entry.encode() + b"\0" + digest(os.path.join(path, entry)).encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def engine_failures(value: str, names: str) -> list[str]:
    """Return the sorted step names of an engine's failed nodes, as a local exit handler sees.

    ``value`` is Argo's ``{{workflow.failures}}``: a JSON list of nodes (``displayName``,
    ``phase``...), ``null`` when none failed, quoted once more as a JSON string by Argo >= 3.5.
    Only nodes named like a step's task (``names``: task name -> step name) count: a retried
    attempt (``task(0)``), a map item (``task(0:x)``) and the workflow's own node do not.
    """
    try:
        nodes = json.loads(value)
        if isinstance(nodes, str):
            nodes = json.loads(nodes)
        tasks = json.loads(names)
    except ValueError as exc:
        raise ParameterError(f"--failures / --failure-names: not JSON ({exc})") from None
    if not isinstance(nodes, (list, type(None))) or not isinstance(tasks, dict):
        raise ParameterError("--failures must be a JSON list of nodes, --failure-names an object")
    failed = {
        tasks[n["displayName"]]
        for n in nodes or []
        if isinstance(n, dict)
        and n.get("displayName") in tasks
        and n.get("phase") in ("Failed", "Error")
    }
    return sorted(failed)


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
