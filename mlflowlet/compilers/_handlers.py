"""How a compiled step references its handler: by module path, or pickled by value.

A handler whose module the container can import is referenced as ``module:function`` (the
default). One defined in a notebook cell, in a script's ``__main__`` or inside another function
cannot be, so it travels pickled with cloudpickle in the step's arguments (``--handler-pickle``,
see :mod:`mlflowlet._pickled`), with the Python version recorded; the entrypoint checks that
version and runs the handler exactly as one it imported. The run context and secrets stores are
never pickled: a handler that references one is refused at compile time.
"""

from __future__ import annotations

from typing import Any

from ..errors import CompileError


def needs_pickle(spec: Any) -> bool:
    """Whether a step's handler cannot be imported by module path (``__main__``, nested)."""
    if getattr(spec, "container", None) is not None:  # a container_step runs no Python handler
        return False
    return spec.module in ("__main__", "") or "<locals>" in spec.handler


def handler_payload(node: Any) -> str:
    """Return the pickled handler of ``node`` (``''`` when its module path is importable).

    Raises:
        CompileError: the handler references a context or secrets store, cannot be pickled, or
            is larger than a compiled step can carry.
    """
    if not needs_pickle(node.spec):
        return ""
    from .._pickled import encode_handler
    from ..context import Context
    from ..pipelines.step import Step
    from ..secrets import SecretsStore

    step = node.step
    fresh = Step(step.fn, step.spec, step.hyper)  # without the locally built wrapper
    return encode_handler(fresh, f"step {node.name!r}", refuse=(Context, SecretsStore))


def check_total(payloads: list[str]) -> None:
    """Refuse a pipeline whose pickled handlers together exceed what one workflow carries."""
    from .._pickled import MAX_TOTAL_PAYLOAD_CHARS

    total = sum(len(p) for p in payloads)
    if total > MAX_TOTAL_PAYLOAD_CHARS:
        raise CompileError(
            f"the pipeline's pickled handlers total {total} characters, over the "
            f"{MAX_TOTAL_PAYLOAD_CHARS} one compiled workflow carries (it is one Kubernetes "
            "object); move the steps into a module built into the image (--image)"
        )
