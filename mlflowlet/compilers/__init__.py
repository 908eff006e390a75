"""Compile a ``@pipeline`` to a workflow engine's own format: KFP v2 IR or an Argo Workflow.

``compile(pipe, target='kfp'|'argo', output=None, image=None, **options)`` returns the compiled
document as a dict (and writes YAML to ``output``). Targets come from a lazy registry: the
built-ins first, then the ``mlflowlet.compilers`` entry-point group (a class or factory giving a
:class:`Compiler`). Compilers are deterministic pure functions: the same pipeline and options
give byte-identical YAML.

Design choices (see ``_plan.py`` for the shared plan):

* KFP is built with the kfp SDK: one ``dsl.container_component`` generated per step from its
  spec, a ``dsl.pipeline`` function generated from the pipeline's parameters, then
  ``kfp.compiler.Compiler``, so the output is KFP's own IR; Kubernetes secrets and node
  selectors go through ``kfp-kubernetes`` (the platform spec, a second YAML document).
* Argo is built from hera's Argo models, one small builder function per Argo object, serialised
  to a plain dict (the Argo JSON schema's shape) and YAML.
* Hyper-parameter steps run their iterations inside one container (see ``_plan.py``).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from ..errors import CompileError, UnknownBackendError
from ._options import CompileOptions, make_options

if TYPE_CHECKING:
    from ..pipelines.pipeline import Pipeline

__all__ = [
    "Compiler",
    "CompileOptions",
    "available",
    "compile",
    "compile_text",
    "get_compiler",
    "load_pipeline",
    "to_yaml",
]

_BUILTIN = {
    "argo": "mlflowlet.compilers.argo:ArgoCompiler",
    "kfp": "mlflowlet.compilers.kfp:KFPCompiler",
}
ENTRY_POINT_GROUP = "mlflowlet.compilers"


class Compiler(ABC):
    """A compile target: turns a traced pipeline into the engine's documents."""

    target = ""

    @abstractmethod
    def compile_docs(self, pipe: Pipeline, options: CompileOptions) -> list[dict[str, Any]]:
        """Return the compiled YAML documents (most targets: exactly one)."""

    def as_dict(self, docs: list[dict[str, Any]]) -> dict[str, Any]:
        """Return the documents as the one dict :func:`compile` returns."""
        return docs[0]

    def to_text(self, docs: list[dict[str, Any]]) -> str:
        """Return the documents as deterministic YAML text."""
        return to_yaml(docs)


def to_yaml(docs: list[dict[str, Any]] | dict[str, Any]) -> str:
    """Dump one or more documents as YAML, keys in the order built, ``---`` between them."""
    import yaml

    if isinstance(docs, dict):
        docs = [docs]
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: same text, faster
    return yaml.dump_all(
        docs,
        Dumper=dumper,
        sort_keys=False,
        default_flow_style=False,
        width=100,
        allow_unicode=True,
    )


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Return the registered targets: built-ins, then entry points."""
    return sorted(set(_BUILTIN) | set(_entry_points()))


def get_compiler(target: str) -> Compiler:
    """Return the compiler of ``target``.

    Raises:
        UnknownBackendError: no such target (the message lists the available ones).
    """
    if target in _BUILTIN:
        from importlib import import_module

        module, _, name = _BUILTIN[target].partition(":")
        return getattr(import_module(module), name)()
    eps = _entry_points()
    if target not in eps:
        raise UnknownBackendError("compile target", target, available())
    obj = eps[target].load()
    compiler = obj() if callable(obj) and not isinstance(obj, Compiler) else obj
    if not isinstance(compiler, Compiler):
        raise CompileError(
            f"entry point {target!r} of {ENTRY_POINT_GROUP} gave "
            f"{type(compiler).__name__}, not a mlflowlet Compiler"
        )
    return compiler


def _docs(
    pipe: Pipeline | str, target: str, image: str | None, options: dict[str, Any]
) -> tuple[Compiler, list[dict[str, Any]]]:
    if isinstance(pipe, str):
        pipe = load_pipeline(pipe)
    from ..pipelines.pipeline import Pipeline

    if not isinstance(pipe, Pipeline):  # not hasattr(pipe, "dag"): it would hide a trace error
        raise CompileError(f"compile() takes a @pipeline, got {type(pipe).__name__}")
    compiler = get_compiler(target)
    opts = make_options(image, pipe.dag.name, **options)
    docs = compiler.compile_docs(pipe, opts)
    from ._tracking import warn_untracked

    warn_untracked(opts)  # once it compiled: an error is said alone
    return compiler, docs


def compile(
    pipe: Pipeline | str,
    target: str = "kfp",
    output: str | os.PathLike[str] | None = None,
    image: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Compile a pipeline for ``target`` and return the document (and write YAML to ``output``).

    Args:
        pipe: a ``@pipeline`` (or ``'file.py:name'`` / ``'package.module:name'``).
        target: ``'kfp'``, ``'argo'`` or a target registered as an entry point.
        output: a path to write the YAML to.
        image: the default container image of the steps.
        **options: see :class:`CompileOptions` (``env``, ``secrets``, ``dbpath``, ``schedule``,
            ``kind``, ``params``, ``service_account``, ``steps``...).

    Returns:
        The compiled document: an Argo ``Workflow`` (or ``WorkflowTemplate`` /
        ``CronWorkflow``) dict, or the KFP ``PipelineSpec`` dict (``{"pipeline_spec",
        "platform_spec"}`` when there is a Kubernetes platform spec).

    Raises:
        CompileError: the pipeline cannot be carried by the target (the message says why).
        UnknownBackendError: an unknown target (the message lists the available ones).
    """
    compiler, docs = _docs(pipe, target, image, options)
    if output is not None:
        _write(output, compiler.to_text(docs))
    return compiler.as_dict(docs)


def compile_text(
    pipe: Pipeline | str, target: str = "kfp", image: str | None = None, **options: Any
) -> str:
    """Like :func:`compile`, but return the YAML text (what ``output=`` would hold)."""
    compiler, docs = _docs(pipe, target, image, options)
    return compiler.to_text(docs)


def _write(path: str | os.PathLike[str], text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def load_pipeline(ref: str) -> Pipeline:
    """Return the ``@pipeline`` named ``'path/file.py:name'`` or ``'package.module:name'``.

    Raises:
        CompileError: ``ref`` has no ``:name``, or names something that is not a pipeline.
    """
    from .._binding import resolve_handler
    from ..errors import ConfigError

    if ":" not in ref:
        raise CompileError(f"{ref!r}: name the pipeline as file.py:name or package.module:name")
    try:
        obj = resolve_handler(ref)
    except ConfigError as exc:
        raise CompileError(f"cannot load pipeline {ref!r}: {exc}") from None
    from ..pipelines.pipeline import Pipeline

    if not isinstance(obj, Pipeline):
        raise CompileError(f"{ref!r} is a {type(obj).__name__}, not a @pipeline")
    return obj
