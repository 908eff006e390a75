"""Compiling a ``container_step``: the engine's own container, not the mlflowlet entrypoint.

A container step compiles to what the engines call a container: a KFP container component
(``dsl.container_component`` returning ``dsl.ContainerSpec(image, command, args)``, each
``{{inputs.NAME}}`` an input parameter placeholder and each ``{{outputs.NAME}}`` a
``dsl.OutputPath`` of the declared type,
https://www.kubeflow.org/docs/components/pipelines/user-guides/components/container-components/)
and an Argo container template (``{{inputs.parameters.NAME}}`` in its args, each output an
``outputs.parameters[].valueFrom.path`` in ``/tmp``, which every image has: Argo does not create
folders for output parameters). Every declared output is an output parameter, read or not.

What a compiled pipeline cannot carry faithfully is refused here, naming the step and the target:
an artifact input (a container step takes values), a Python step's result as an input (it
crosses as JSON text, so a string would arrive quoted, unlike a local run), a condition or
a map reading a container step's output (those read typed ``__if`` / ``__items`` outputs only
the entrypoint writes), and its output as a pipeline output (those are JSON texts).

For ``--check``, :func:`plain_run` stands in for the run record a container step does not
print: its state from the exit code, its results from its output files.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import CompileError, RunError
from ..pipelines.container import as_text, placeholder_parts, read_output
from ._container import EXEC_CONFIG_ENV, OUTPUTS_ANNOTATION
from ._naming import kfp_name, param_name
from ._plan import Slot, StepPlan

ARGO_OUTPUT_DIR = "/tmp"


def is_container(st: StepPlan) -> bool:
    """Whether a planned step is a ``container_step``."""
    return st.node is not None and getattr(st.node.spec, "container", None) is not None


def adjust_plan(dag: Any, node: Any, plan: StepPlan) -> None:
    """Apply container-step rules to a step's plan (as producer and as consumer).

    A parameter fed by a container step's output takes the output's declared type (the engine
    carries the file's text, never JSON). A container step outputs every declared output and
    gets the defaults of the inputs it was not given as literals.

    Raises:
        CompileError: what the module docstring lists as refused.
    """
    for param, src in plan.params.items():
        producer = dag.node(src.node).spec.container if src.kind == "result" else None
        if producer is not None:
            if src.key not in producer.outputs:
                raise CompileError(
                    f"step {node.name!r} reads {src.key!r} of container step {src.node!r}, "
                    f"which declares outputs {sorted(producer.outputs)}"
                )
            plan.param_types[param] = producer.outputs[src.key]
    spec = node.spec.container
    if spec is None:
        return
    where = f"container step {node.name!r} (compiled for KFP or Argo)"
    if plan.artifacts_in:
        raise CompileError(
            f"{where}: input {sorted(plan.artifacts_in)[0]!r} is an artifact; container steps "
            "take values (pipeline parameters, literals, other container steps' outputs)"
        )
    for param, src in plan.params.items():
        if src.kind == "result" and dag.node(src.node).spec.container is None:
            raise CompileError(
                f"{where}: input {param!r} is a result of Python step {src.node!r}, which a "
                f"compiled pipeline carries as JSON text (a string arrives quoted); pass it "
                "as a pipeline parameter or log it from a container step"
            )
        if src.kind not in ("param", "result"):
            raise CompileError(f"{where}: input {param!r} cannot be a {src.kind} input")
    for key, value in dag.outputs.items():
        if getattr(value, "node", None) == node.name:
            raise CompileError(
                f"{where}: pipeline output {key!r} is its output {value.key!r}, but compiled "
                "pipeline outputs are JSON step results; return a Python step's result that "
                "reads it"
            )
    for key, uses in plan.results.items():
        if key not in spec.outputs:
            raise CompileError(
                f"{where}: a step reads output {key!r}, which it does not declare (outputs: "
                f"{sorted(spec.outputs)})"
            )
        bad = sorted(set(uses) - {"json"})
        if bad:
            what = "a condition" if "cond" in bad else "a map"
            raise CompileError(
                f"{where}: {what} reads output {key!r}, which the engines hold as a container's "
                "file text only; read it in a Python step and use that step's result"
            )
    plan.results = {key: {"json": typ} for key, typ in sorted(spec.outputs.items())}
    for p in node.spec.params:  # the defaults of inputs not given (tracing checks required)
        if p.name not in plan.params and p.name not in plan.literals and not p.required:
            plan.literals[p.name] = p.default


def command_parts(st: StepPlan) -> tuple[list[list[str | Slot]], list[list[str | Slot]]]:
    """Return the container's command and args, each a list of parts (literals and slots)."""
    spec = st.node.spec.container

    def parts(text: str) -> list[str | Slot]:
        out: list[str | Slot] = []
        for part in placeholder_parts(text):
            if isinstance(part, str):
                out.append(part)
            elif part[0] == "outputs":
                out.append(Slot("out_result", part[1]))
            elif part[1] in st.literals:
                out.append(as_text(st.literals[part[1]]))
            else:
                out.append(Slot("param", part[1]))
        return out

    return [parts(t) for t in spec.command], [parts(t) for t in spec.args]


def argo_output_path(name: str) -> str:
    """Return the in-container path of output ``name`` of a container step on Argo."""
    return f"{ARGO_OUTPUT_DIR}/mlflowlet-output-{param_name(name)}"


def argo_command(st: StepPlan) -> tuple[list[str], list[str]]:
    """Return the Argo container's command and args (inputs as ``{{inputs.parameters.X}}``)."""

    def render(part: str | Slot) -> str:
        if isinstance(part, str):
            return part
        if part.kind == "param":
            return f"{{{{inputs.parameters.{part.name}}}}}"
        return argo_output_path(part.name)

    command, args = command_parts(st)
    return ["".join(map(render, p)) for p in command], ["".join(map(render, p)) for p in args]


def kfp_container_spec(dsl: Any, st: StepPlan, found: dict[Slot, Any]) -> Any:
    """Return the ``dsl.ContainerSpec`` of a container step (``found``: slot → placeholder)."""
    command, args = command_parts(st)

    def render(parts: list[str | Slot]) -> str:
        return "".join(p if isinstance(p, str) else str(found[p]) for p in parts)

    return dsl.ContainerSpec(
        image=st.image,
        command=[render(p) for p in command],
        args=[render(p) for p in args] or None,
    )


def plain_config(env: dict[str, str], root: str = "") -> str:
    """Return a container step's ``MLFLOWLET_EXEC_CONFIG`` (``''`` for an mlflowlet step).

    With ``root`` (a pod's folder), makes the pod's ``/tmp`` there: an image has one, and the
    step's outputs are written in it (``--check`` only).
    """
    config = env.get(EXEC_CONFIG_ENV, "")
    meta = json.loads(config or "{}").get("metadata", {})
    if OUTPUTS_ANNOTATION not in meta.get("annotations", {}):
        return ""
    if root:
        os.makedirs(os.path.join(root, ARGO_OUTPUT_DIR.lstrip("/")), exist_ok=True)
    return config


def make_output_folders(argv: list[str], root: str) -> None:
    """Make the folders of the output files under ``root`` that ``argv`` names (``--check``).

    KFP's launcher makes each output parameter file's folder before the container starts
    (``prepareOutputFolders``); ``kfp.local`` leaves that to the Python executor, which a
    container step does not run.
    """
    import re

    for arg in argv:
        for path in re.findall(re.escape(root) + r"[^\s'\";|&<>]*", arg):
            os.makedirs(os.path.dirname(path), exist_ok=True)


def plain_run(
    pod: Any, config: str, texts: dict[str, str] | None = None, values: dict[str, Any] | None = None
) -> None:
    """Give a container step's pod the run record it does not print (``--check`` only).

    Args:
        pod: the ``PodRun`` (its exit code decides the state).
        config: the container's ``MLFLOWLET_EXEC_CONFIG`` (names the output types).
        texts: output name to its file's text (Argo), read as the local run reads it.
        values: output name to the value the engine read (KFP's launcher rules).
    """
    meta = json.loads(config or "{}").get("metadata", {})
    types = json.loads(meta.get("annotations", {}).get(OUTPUTS_ANNOTATION, "{}"))
    results: dict[str, Any] = {}
    state = "completed" if pod.ok else "error"
    if pod.ok:
        try:
            for key, typ in types.items():
                if texts is not None:
                    results[key] = read_output(key, typ, texts[param_name(key)])
                else:
                    results[key] = (values or {})[kfp_name(key)]
        except (KeyError, ValueError, RunError) as exc:
            state, pod.log = "error", f"{pod.log}\noutput: {exc}"
    status = {"state": state, "results": results}
    pod.run = {"metadata": {"name": meta.get("name", "")}, "status": status}
