"""The immutable description of a step (:class:`StepSpec`), read once from its function.

:func:`build_spec` reads the signature (names, hints, defaults, the context parameter) and checks
the ``@step`` options; problems raise :class:`~mlflowlet.errors.StepDefinitionError` naming the
function, its file and line, and the fix.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .._binding import _strip_optional, handler_signature
from .._ctx_workflow import reads_workflow
from ..errors import StepDefinitionError

RESOURCE_KEYS = ("cpu", "memory", "gpu")
# what a declared output is (``outputs={"model": "model"}``): KFP shows each kind in its viewer
ARTIFACT_KINDS = ("artifact", "dataset", "model", "metrics", "html", "markdown")
# return annotations (short type names) that declare an output's kind
_KIND_OF_TYPE = {
    "Model": "model",
    "ModelArtifact": "model",
    "Dataset": "dataset",
    "DatasetArtifact": "dataset",
    "DataFrame": "dataset",
    "Metrics": "metrics",
    "HTML": "html",
    "Markdown": "markdown",
}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_EMPTY = inspect.Parameter.empty


def type_name(hint: Any) -> str:
    """Return a short, stable name for a type hint (``''`` when there is none)."""
    if hint is _EMPTY or hint is None:
        return ""
    base = _strip_optional(hint)
    if isinstance(base, str):
        return base.split(".")[-1]
    if isinstance(base, type) and not typing.get_args(base):
        return base.__name__
    return str(base).replace("typing.", "")


def spreads_return(returns: str, outputs: Collection[str]) -> bool:
    """Whether a step returns a dict (annotated, no output stored): logged one result per key."""
    base = returns.split("[", 1)[0].strip().rsplit(".", 1)[-1].lower()
    mappings = ("dict", "mapping", "mutablemapping", "ordereddict", "defaultdict")
    return base in mappings and not outputs


@dataclass(frozen=True)
class ParamSpec:
    """One step (or pipeline) parameter.

    Attributes:
        name: the parameter name.
        type: the hint as a short name (``'int'``, ``'DataItem'``, ``'list[str]'``; ``''``: none).
        default: the default (meaningful only when not ``required``).
        required: True when there is no default.
        dataitem: True when hinted ``DataItem`` (an artifact input).
        hint: the hint object itself.
    """

    name: str
    type: str
    default: Any
    required: bool
    dataitem: bool
    hint: Any = field(default=_EMPTY, repr=False, compare=False)

    def describe(self) -> dict[str, Any]:
        """Return name, type, required, dataitem and (when optional) default."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "dataitem": self.dataitem,
        }
        if not self.required:
            out["default"] = self.default
        return out


@dataclass(frozen=True)
class StepSpec:
    """Everything a runner or a compiler needs to know about a step, fixed at decoration.

    Attributes:
        name: the step name (default: the function's name).
        handler: ``'module:qualname'`` of the function (``module`` may be ``'__main__'``).
        module: the function's module name.
        function: the function's qualified name.
        source: ``'file:line'`` where the function is defined.
        params: the parameters, in signature order, without the context parameter.
        context_param: the name of the parameter that receives the context, or None.
        var_keyword: True when the function takes ``**kwargs``.
        outputs: the declared artifact outputs.
        returns: the return annotation as a short name.
        image: the container image for compiled runs (``''``: the pipeline default).
        image_has_mlflowlet: the image is a bare base image name (``python:3.11``) that does
            have mlflowlet installed: no compile-time warning.
        resources: ``cpu``, ``memory`` and ``gpu`` requests.
        retries: attempts after the first failure.
        retry_delay: seconds before the first retry (doubling each time).
        timeout: seconds a run may take, or None.
        cache: True/False, or None to follow ``pipe.run(cache=...)``.
        cache_max_age: seconds a cached run stays reusable (``cache=timedelta(...)``); None:
            no limit.
        labels: labels set on the step's runs.
        outputs_types: declared artifact output to its kind (``model``, ``metrics``, ``html``...;
            see :data:`ARTIFACT_KINDS`), for outputs declared with a kind.
        doc: the function's docstring.
        container: what a ``container_step`` runs (a
            :class:`~mlflowlet.pipelines.container.ContainerSpec`), None for a Python step.
        uses_workflow: the function reads ``context.workflow`` (compiled, it then gets the
            workflow's name, uid, attempt, parameters and creation time).
    """

    name: str
    handler: str
    module: str
    function: str
    source: str
    params: tuple[ParamSpec, ...]
    context_param: str | None
    var_keyword: bool
    outputs: tuple[str, ...] = ()
    returns: str = ""
    image: str = ""
    image_has_mlflowlet: bool = False
    resources: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    retries: int = 0
    retry_delay: float = 0.0
    timeout: float | None = None
    cache: bool | None = None
    cache_max_age: float | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    outputs_types: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    doc: str = ""
    container: Any = None
    uses_workflow: bool = False

    def param(self, name: str) -> ParamSpec | None:
        """Return the parameter called ``name``, or None."""
        for p in self.params:
            if p.name == name:
                return p
        return None

    def describe(self) -> dict[str, Any]:
        """Return the spec as a plain, JSON-safe dict."""
        return {
            "name": self.name,
            "handler": self.handler,
            "module": self.module,
            "function": self.function,
            "source": self.source,
            "params": [p.describe() for p in self.params],
            "context_param": self.context_param,
            "var_keyword": self.var_keyword,
            "outputs": list(self.outputs),
            "returns": self.returns,
            "image": self.image,
            "image_has_mlflowlet": self.image_has_mlflowlet,
            "resources": dict(self.resources),
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "timeout": self.timeout,
            "cache": self.cache,
            "cache_max_age": self.cache_max_age,
            "labels": dict(self.labels),
            "outputs_types": dict(self.outputs_types),
            "doc": self.doc,
            **({"container": self.container.describe()} if self.container is not None else {}),
            **({"uses_workflow": True} if self.uses_workflow else {}),
        }


@dataclass(frozen=True)
class HyperSpec:
    """Hyper-parameters of a step call (see :meth:`Step.with_hyper_params`)."""

    hyper_params: Mapping[str, tuple[Any, ...]]
    selector: str = ""
    strategy: str = "grid"
    max_iterations: int | None = None
    max_errors: int | None = None
    parallel: int | None = None
    seed: int | None = None

    def describe(self) -> dict[str, Any]:
        """Return the hyper-parameters and options as a plain dict."""
        return {
            "hyper_params": {k: list(v) for k, v in self.hyper_params.items()},
            "selector": self.selector,
            "strategy": self.strategy,
            "max_iterations": self.max_iterations,
            "max_errors": self.max_errors,
            "parallel": self.parallel,
            "seed": self.seed,
        }


def where(fn: Any) -> str:
    """Return ``'file:line'`` of a function's definition (``'?'`` when unknown)."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code is not None else "?"


def _fail(fn: Any, problem: str) -> StepDefinitionError:
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return StepDefinitionError(f"@step on {name} ({where(fn)}): {problem}")


def _check_options(fn: Any, opts: dict[str, Any]) -> dict[str, Any]:
    out = dict(opts)
    name = out.get("name")
    if name is not None and (not isinstance(name, str) or not _NAME.match(name)):
        raise _fail(fn, f"name={name!r} must be letters, digits, '_', '.' or '-'")
    if out.get("outputs") is not None:
        out["outputs"], out["outputs_types"] = _check_outputs(fn, out["outputs"])
    if out.get("resources") is not None:
        res = out["resources"]
        bad = sorted(set(res) - set(RESOURCE_KEYS)) if isinstance(res, dict) else None
        if bad is None or bad:
            raise _fail(fn, f"resources must be a dict with keys {RESOURCE_KEYS}, got {res!r}")
        out["resources"] = MappingProxyType(dict(res))
    retries = out.get("retries")
    if retries is not None and (
        isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
    ):
        raise _fail(fn, f"retries must be an integer >= 0, got {retries!r}")
    for key in ("retry_delay", "timeout"):
        value = out.get(key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or value < 0
            or (key == "timeout" and value == 0)
        ):
            raise _fail(fn, f"{key} must be a positive number of seconds, got {value!r}")
        if value is not None:
            out[key] = float(value)
    keep = set()
    if out.get("cache") is not None:
        out["cache"], out["cache_max_age"] = _check_cache(fn, out["cache"])
        keep.add("cache_max_age")  # cache=True after cache=timedelta(...) lifts the limit
    if out.get("labels") is not None:
        if not isinstance(out["labels"], dict):
            raise _fail(fn, f"labels must be a dict, got {type(out['labels']).__name__}")
        out["labels"] = MappingProxyType({str(k): str(v) for k, v in out["labels"].items()})
    if out.get("image") is not None and not isinstance(out["image"], str):
        raise _fail(fn, f"image must be a string, got {out['image']!r}")
    flag = out.get("image_has_mlflowlet")
    if flag is not None and not isinstance(flag, bool):
        raise _fail(fn, f"image_has_mlflowlet must be True or False, got {flag!r}")
    return {k: v for k, v in out.items() if v is not None or k in keep}


def _check_outputs(fn: Any, outputs: Any) -> tuple[tuple[str, ...], Mapping[str, str]]:
    """Return the declared output names and the kinds declared with a dict."""
    kinds: dict[str, str] = {}
    if isinstance(outputs, str):
        outputs = [outputs]
    if isinstance(outputs, dict):
        for key, kind in outputs.items():
            if kind not in ARTIFACT_KINDS:
                kinds_ = list(ARTIFACT_KINDS)
                raise _fail(fn, f"output {key!r} is declared {kind!r}; declare one of {kinds_}")
        kinds = {k: v for k, v in outputs.items() if v != "artifact"}
        outputs = list(outputs)
    if not isinstance(outputs, (list, tuple)):
        raise _fail(fn, f"outputs must be a list of names, got {type(outputs).__name__}")
    for key in outputs:
        if not isinstance(key, str) or not _NAME.match(key):
            raise _fail(fn, f"output name {key!r} must be letters, digits, '_', '.' or '-'")
    dupes = sorted({k for k in outputs if list(outputs).count(k) > 1})
    if dupes:
        raise _fail(fn, f"outputs {dupes} are declared twice; declare each once")
    return tuple(outputs), MappingProxyType(kinds)


def _check_cache(fn: Any, cache: Any) -> tuple[bool, float | None]:
    """Return ``(cache, max age in seconds)`` of a ``cache=`` option."""
    from datetime import timedelta

    if isinstance(cache, bool):
        return cache, None
    if isinstance(cache, timedelta):
        seconds = cache.total_seconds()
        if seconds <= 0:
            raise _fail(
                fn, f"cache={cache!r} never reuses anything; pass cache=False (or a positive age)"
            )
        return True, seconds
    raise _fail(fn, f"cache must be True, False, None or a timedelta (the max age), got {cache!r}")


def _kinds_from_return(hints: dict[str, Any], outputs: tuple[str, ...]) -> dict[str, str]:
    """Return output kinds declared by the return annotation (``-> Model``, a tuple of them)."""
    hint = hints.get("return", _EMPTY)
    if hint is _EMPTY or not outputs:
        return {}
    args = typing.get_args(hint) if typing.get_origin(hint) is tuple else ()
    hints_ = list(args) if len(outputs) > 1 and len(args) == len(outputs) else [hint]
    found = {}
    for key, item in zip(outputs, hints_, strict=False):
        kind = _KIND_OF_TYPE.get(type_name(item))
        if kind:
            found[key] = kind
    return found


def build_spec(fn: Callable[..., Any], **options: Any) -> StepSpec:
    """Read ``fn``'s signature once and return its :class:`StepSpec`.

    Raises:
        StepDefinitionError: ``fn`` is not a function, takes ``*args`` or positional-only
            parameters, or an option is invalid; the message names the function, file and line.
    """
    if not inspect.isfunction(fn) and not inspect.ismethod(fn):
        raise _fail(fn, f"expected a function, got {type(fn).__name__}; decorate a def")
    try:
        sig = handler_signature(fn)
    except (TypeError, ValueError) as exc:
        raise _fail(fn, f"cannot read the signature ({exc})") from None
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
            raise _fail(
                fn,
                f"parameter {p.name!r} cannot be passed by name; steps bind "
                "arguments by name, so remove *args / the '/' marker",
            )
    contexts = [p.name for p in sig.params if p.is_context]
    if len(contexts) > 1:
        raise _fail(fn, f"only one parameter may receive the context, got {contexts}")
    params = tuple(
        ParamSpec(
            p.name,
            type_name(p.hint),
            None if p.required else p.default,
            p.required,
            p.is_dataitem,
            p.hint,
        )
        for p in sig.params
        if not p.is_context
    )
    opts = _check_options(fn, options)
    module = getattr(fn, "__module__", "") or ""
    qualname = getattr(fn, "__qualname__", fn.__name__)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: keep the raw annotations
        hints = dict(getattr(fn, "__annotations__", {}))
    kinds = {**_kinds_from_return(hints, opts.get("outputs", ())), **opts.get("outputs_types", {})}
    if kinds:
        opts["outputs_types"] = MappingProxyType(kinds)
    return StepSpec(
        name=opts.pop("name", fn.__name__),
        handler=f"{module}:{qualname}",
        module=module,
        function=qualname,
        source=where(fn),
        params=params,
        context_param=contexts[0] if contexts else None,
        var_keyword=sig.var_keyword,
        returns=type_name(hints.get("return", _EMPTY)),
        doc=inspect.getdoc(fn) or "",
        uses_workflow=reads_workflow(fn),
        **opts,
    )
