"""A step's declared outputs: returned values stored as artifacts, typed artifact inputs loaded.

:func:`make_handler` wraps a step function once; the runtime binds and calls the wrapper like any
handler (``functools.wraps`` keeps the signature), so binding, error capture and commits stay the
core's. The wrapper stores a returned value as the declared output(s) not logged yet, checks that
every declared output was produced, loads artifact inputs whose parameter is typed (``dict``,
``bytes``, a DataFrame...), and turns collected artifact lists into ``DataItem`` s.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any

from .._binding import _strip_optional, handler_signature
from ..errors import ArtifactError, PipelineError

PICKLE_FORMAT = "pkl"
_PASS_THROUGH = ("", "DataItem", "Any", "str", "object")


def make_handler(fn: Callable[..., Any], spec: Any) -> Callable[..., Any]:
    """Return the function the runtime calls for a step (same signature as ``fn``)."""
    outputs = tuple(spec.outputs)
    typed = _typed_params(fn)

    @functools.wraps(fn)
    def handler(**kwargs: Any) -> Any:
        from ..context import get_active_context

        ctx = get_active_context()
        if ctx is not None:
            _prepare_inputs(ctx, kwargs, typed)
        value = fn(**kwargs)
        if not outputs or ctx is None:
            return value
        value = store_returned(ctx, spec.name, outputs, value)
        logged = {a.get("key") for a in ctx.artifacts}
        missing = [k for k in outputs if k not in logged]
        if missing:
            raise PipelineError(
                f"step {spec.name!r} declared output(s) {missing} but never produced them; log "
                f"each with context.log_artifact({missing[0]!r}, ...) or return the value"
            )
        return value

    return handler


def _typed_params(fn: Callable[..., Any]) -> dict[str, Any]:
    """Parameters whose hint asks for a loaded value rather than a ``DataItem``."""
    from ._spec import type_name

    out = {}
    for p in handler_signature(fn).params:
        if p.is_context or p.is_dataitem:
            continue
        name = type_name(p.hint)
        if name not in _PASS_THROUGH:
            out[p.name] = _strip_optional(p.hint)
    return out


def _prepare_inputs(ctx: Any, kwargs: dict[str, Any], typed: dict[str, Any]) -> None:
    inputs = ctx._run.spec.inputs
    for name, value in list(kwargs.items()):
        if isinstance(value, list) and f"{name}[0]" in inputs:
            kwargs[name] = [ctx.get_input(f"{name}[{i}]") for i in range(len(value))]
        elif name in typed and name in inputs and hasattr(value, "local"):
            kwargs[name] = load_value(value, typed[name], name)


def load_value(item: Any, hint: Any, name: str = "") -> Any:
    """Read an artifact ``DataItem`` as the value its parameter's type hint asks for.

    ``bytes`` get the raw bytes; DataFrames read csv/parquet/json; otherwise the format
    decides: ``.json`` is parsed, ``.pkl`` unpickled, text decoded.
    """
    from ._spec import type_name

    wanted = type_name(hint)
    if wanted == "bytes":
        return item.get()
    if wanted == "DataFrame":
        return item.as_df()
    fmt = item.suffix.lstrip(".").lower()
    if fmt == "json":
        return json.loads(item.get())
    if fmt == PICKLE_FORMAT:
        import cloudpickle

        return cloudpickle.loads(item.get())
    if fmt in ("parquet", "pq", "csv", "tsv"):
        return item.as_df()
    data = item.get()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PipelineError(
            f"parameter {name!r} is typed {wanted} but artifact {item.url} is "
            "binary; type it DataItem or bytes"
        ) from None


def store_returned(ctx: Any, step_name: str, outputs: tuple[str, ...], value: Any) -> Any:
    """Store ``value`` as the declared outputs not logged yet; return what is left to log.

    One missing output takes the whole value; several take a tuple of as many values, in order.
    Anything else is returned unchanged (and logged as results by the runtime).
    """
    if value is None:
        return None
    logged = {a.get("key") for a in ctx.artifacts}
    missing = [k for k in outputs if k not in logged]
    if len(missing) == 1:
        store_output(ctx, step_name, missing[0], value)
        return None
    if missing and isinstance(value, tuple) and len(value) == len(missing):
        for key, item in zip(missing, value, strict=True):
            store_output(ctx, step_name, key, item)
        return None
    return value


def store_output(ctx: Any, step_name: str, key: str, value: Any) -> Any:
    """Log one returned value as artifact ``key``, by type.

    bytes → file, str → text, a path → that file, a DataFrame → parquet dataset, dict/list
    and numbers → JSON, anything else → a cloudpickle file (format ``pkl``).

    Raises:
        ArtifactError: the value cannot be serialised (names the step, output and type).
    """
    from ..artifacts.base import is_dataframe

    kind = type(value).__name__
    try:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return ctx.log_artifact(key, body=bytes(value), format="bin")
        if isinstance(value, str):
            return ctx.log_artifact(key, body=value, format="txt")
        if isinstance(value, os.PathLike):
            return ctx.log_artifact(key, local_path=os.fspath(value))
        if is_dataframe(value):
            return ctx.log_dataset(key, value)
        if isinstance(value, (dict, list, int, float, bool)):
            body = json.dumps(value, indent=2)
            return ctx.log_artifact(key, body=body, format="json")
    except (TypeError, ValueError) as exc:
        raise ArtifactError(
            f"step {step_name!r} cannot store output {key!r} from a {kind}: {exc}; return "
            "bytes, str, a path, a DataFrame, JSON-able dict/list, or a picklable object"
        ) from None
    import cloudpickle

    try:
        body = cloudpickle.dumps(value)
    except Exception as exc:
        raise ArtifactError(
            f"step {step_name!r} cannot serialize output {key!r} of type {kind} ({exc}); return "
            "bytes, str, a path, a DataFrame, a dict/list, or a picklable object"
        ) from None
    return ctx.log_artifact(
        key,
        body=body,
        format=PICKLE_FORMAT,
        labels={"serializer": "cloudpickle", "python_type": kind},
    )
