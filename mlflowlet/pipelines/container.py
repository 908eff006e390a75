"""``container_step``: a step that is a plain container (jq, a shell tool, another language).

A container step runs ``command`` + ``args`` in ``image``; it is wired into a pipeline like any
step (call it with its inputs; ``node.results["name"]`` reads an output downstream). Placeholders
in ``command`` / ``args`` are filled in where it runs:

* ``{{inputs.NAME}}``: the input's value as text (a string as it is, anything else as JSON);
* ``{{outputs.NAME}}``: the path of a file the command writes output ``NAME`` to (KFP's
  ``dsl.OutputPath``, Argo's ``outputs.parameters[].valueFrom.path``). A ``str`` output is the
  file's exact text (write it with ``printf`` or ``echo -n`` if a newline must not end it);
  ``int`` / ``float`` / ``bool`` outputs are read as JSON, as KFP reads them.

Locally the command runs as a subprocess when its program exists here (a run recorded with its
params, its outputs as results and its stdout/stderr as the log); when it does not, the step's
run is ``skipped`` with the reason ``tool not found here: PROGRAM`` (never ``completed``) and what
needs its outputs is skipped as after any skipped step. Compiled, it is the engine's own container
(a KFP container component, an Argo container template) running the image as given.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from ..errors import RunError, StepDefinitionError
from ._spec import _NAME, build_spec
from .step import Step

__all__ = ["ContainerSpec", "ContainerStep", "container_step", "placeholder_parts"]

OUTPUT_TYPES = ("str", "int", "float", "bool")
TOOL_NOT_FOUND = "tool not found here"
_PLACEHOLDER = re.compile(r"\{\{\s*(inputs|outputs)\.([A-Za-z0-9_.\-]+)\s*\}\}")


@dataclass(frozen=True)
class ContainerSpec:
    """What a container step runs (kept on its ``StepSpec.container``).

    Attributes:
        image: the container image.
        command: the program and its leading arguments.
        args: the arguments, with ``{{inputs.NAME}}`` / ``{{outputs.NAME}}`` placeholders.
        inputs: the input names, in order.
        outputs: output name to its type (``str``, ``int``, ``float`` or ``bool``).
    """

    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: Any  # Mapping[str, str]

    def describe(self) -> dict[str, Any]:
        """Return the spec as a plain, JSON-safe dict."""
        return {
            "image": self.image,
            "command": list(self.command),
            "args": list(self.args),
            "inputs": list(self.inputs),
            "outputs": dict(self.outputs),
        }

    def program(self) -> str:
        """Return the program the command runs (its first word)."""
        return self.command[0]


def placeholder_parts(text: str) -> list[str | tuple[str, str]]:
    """Split ``text`` into literals and ``(kind, name)`` placeholders (kind: inputs/outputs)."""
    parts: list[str | tuple[str, str]] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > pos:
            parts.append(text[pos : match.start()])
        parts.append((match.group(1), match.group(2)))
        pos = match.end()
    if pos < len(text):
        parts.append(text[pos:])
    return parts


def as_text(value: Any) -> str:
    """Return an input value as a container receives it: a string as it is, else JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def read_output(name: str, typ: str, text: str) -> Any:
    """Return output ``name`` read from its file's ``text`` as ``typ`` (KFP's rules).

    Raises:
        RunError: the text is not a value of that type.
    """
    if typ == "str":
        return text
    try:
        value = json.loads(text.lower() if typ == "bool" else text)
    except ValueError:
        value = None
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }[typ]
    if not ok:
        raise RunError(f"output {name!r} is declared {typ} but its file holds {text[:60]!r}")
    return float(value) if typ == "float" else value


class ContainerStep(Step):
    """A :class:`Step` that runs a container command (see :func:`container_step`)."""

    def with_hyper_params(self, *args: Any, **kwargs: Any) -> Step:
        """Not supported: a container step runs once per call."""
        raise StepDefinitionError(
            f"container step {self.name!r}: with_hyper_params() needs a Python step; run the "
            "container step once per value from separate calls"
        )

    def map(self, *args: Any, **kwargs: Any) -> Any:
        """Not supported: a container step runs once per call."""
        raise StepDefinitionError(
            f"container step {self.name!r}: .map() needs a Python step; call the container "
            "step once per item, or fan out a Python step that runs the tool"
        )


def _fail(name: Any, problem: str) -> StepDefinitionError:
    return StepDefinitionError(f"container_step({name!r}): {problem}")


def _check(
    name: Any, image: Any, command: Any, args: Any, inputs: Any, outputs: Any
) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, Any], dict[str, str]]:
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(name, "name must be letters, digits, '_', '.' or '-'")
    if not isinstance(image, str) or not image:
        raise _fail(name, f"image must be a non-empty string, got {image!r}")
    command = [command] if isinstance(command, str) else command
    if not isinstance(command, (list, tuple)) or not command:
        raise _fail(name, "command must be a non-empty list of strings (e.g. ['sh', '-c'])")
    args = [args] if isinstance(args, str) else list(args or ())
    if not all(isinstance(a, str) for a in [*command, *args]):
        raise _fail(name, "command and args must be strings")
    defaults = (
        dict(inputs)
        if isinstance(inputs, dict)
        else {k: inspect.Parameter.empty for k in inputs or ()}
    )
    for key in defaults:
        if not isinstance(key, str) or not key.isidentifier() or key == "context":
            raise _fail(name, f"input name {key!r} must be a Python identifier (not 'context')")
    outs = dict(outputs) if isinstance(outputs, dict) else {k: "str" for k in outputs or ()}
    for key, typ in list(outs.items()):
        typ = getattr(typ, "__name__", typ)
        if not isinstance(key, str) or not _NAME.match(key) or typ not in OUTPUT_TYPES:
            raise _fail(name, f"output {key!r}: {typ!r} is not one of {list(OUTPUT_TYPES)}")
        outs[key] = typ
    used: dict[str, set[str]] = {"inputs": set(), "outputs": set()}
    for text in [*command, *args]:
        for part in placeholder_parts(text):
            if isinstance(part, tuple):
                used[part[0]].add(part[1])
            elif "{{" in part:
                raise _fail(
                    name,
                    f"{text!r} holds a placeholder other than {{{{inputs.NAME}}}} / "
                    "{{outputs.NAME}}; the engines would substitute it",
                )
    unknown = sorted(used["inputs"] - set(defaults)) + sorted(used["outputs"] - set(outs))
    if unknown:
        raise _fail(name, f"placeholders name undeclared inputs/outputs {unknown}")
    unwritten = sorted(set(outs) - used["outputs"])
    if unwritten:
        raise _fail(
            name,
            f"outputs {unwritten} appear in no {{{{outputs.NAME}}}} placeholder: the command "
            "must be told where to write each",
        )
    return tuple(command), tuple(args), defaults, outs


def container_step(
    name: str,
    image: str,
    command: list[str] | str,
    args: list[str] | None = None,
    inputs: list[str] | dict[str, Any] | None = None,
    outputs: list[str] | dict[str, Any] | None = None,
) -> ContainerStep:
    """Return a step that runs a plain container (see the module docstring).

    Args:
        name: the step name.
        image: the container image compiled pipelines run.
        command: the program and its leading arguments (``["sh", "-c"]``, ``["jq"]``).
        args: the arguments; ``{{inputs.NAME}}`` is an input's value, ``{{outputs.NAME}}`` the
            path the command writes output ``NAME`` to.
        inputs: input names (a dict gives defaults: ``{"n": 3}``); pass them as keyword
            arguments when calling the step in a ``@pipeline``.
        outputs: output names (``str``), or a dict of name to ``str``, ``int``, ``float`` or
            ``bool`` (types or their names); each is a result downstream steps read.

    Returns:
        A :class:`ContainerStep`.

    Raises:
        StepDefinitionError: a bad name, image, command, input or output, or a placeholder
            naming nothing declared (or an output no placeholder writes).

    Example:
        ``container_step("count", "busybox", ["sh", "-c"], ["wc -w < /etc/hostname >
        {{outputs.words}}"], outputs={"words": int})``
    """
    command_, args_, defaults, outs = _check(name, image, command, args, inputs, outputs)
    spec = ContainerSpec(image, command_, args_, tuple(defaults), MappingProxyType(outs))
    fn = _make_function(name, spec, defaults)
    caller = inspect.stack()[1]
    digest = hashlib.sha256(json.dumps(spec.describe(), sort_keys=True).encode()).hexdigest()
    st = build_spec(fn, name=name, image=image)
    st = replace(
        st,
        handler=f"container:{name}#{digest[:16]}",  # also keys the local cache on the spec
        source=f"{caller.filename}:{caller.lineno}",
        container=spec,
        doc=f"container step: {' '.join(command_)}",
    )
    return ContainerStep(fn, st)


def _make_function(name: str, spec: ContainerSpec, defaults: dict[str, Any]) -> Any:
    given = {k: d for k, d in defaults.items() if d is not inspect.Parameter.empty}

    def container(context: Any, **values: Any) -> None:
        run_container(context, name, spec, {**given, **values})

    params = [inspect.Parameter("context", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=d) for k, d in defaults.items()
    ]
    container.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    container.__name__ = container.__qualname__ = name.replace("-", "_").replace(".", "_")
    container.__doc__ = f"Run container step {name!r}: {' '.join(spec.command)}."
    return container


def missing_tool(spec: Any) -> str:
    """Return why a container step cannot run here (``''``: its program exists)."""
    container = getattr(spec, "container", None)
    if container is None or shutil.which(container.program()):
        return ""
    return f"{TOOL_NOT_FOUND}: {container.program()!r} is not on PATH"


def run_container(context: Any, name: str, spec: ContainerSpec, values: dict[str, Any]) -> None:
    """Run a container step's command here; log its outputs as results, its output as the log.

    Raises:
        RunError: an artifact input, a non-zero exit, or an output file missing or of the
            wrong type.
    """
    for key, value in values.items():
        if hasattr(value, "url") and hasattr(value, "local"):
            raise RunError(
                f"container step {name!r}: input {key!r} is an artifact; container steps take "
                "values (pipeline parameters, literals, other container steps' outputs)"
            )
    with tempfile.TemporaryDirectory(prefix="mlflowlet-container-") as tmp:
        paths = {key: os.path.join(tmp, key) for key in spec.outputs}
        argv = [
            "".join(
                p
                if isinstance(p, str)
                else (as_text(values[p[1]]) if p[0] == "inputs" else paths[p[1]])
                for p in placeholder_parts(text)
            )
            for text in [*spec.command, *spec.args]
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        sys.stdout.write(proc.stdout)
        sys.stdout.flush()
        sys.stderr.write(proc.stderr)
        sys.stderr.flush()
        if proc.returncode != 0:
            raise RunError(
                f"container step {name!r}: {spec.program()} exited with code {proc.returncode}"
            )
        results = {}
        for key, typ in spec.outputs.items():
            if not os.path.exists(paths[key]):
                raise RunError(
                    f"container step {name!r}: the command wrote no file for output {key!r}"
                )
            with open(paths[key], encoding="utf-8") as fh:
                results[key] = read_output(key, typ, fh.read())
    if results:
        context.log_results(results)
