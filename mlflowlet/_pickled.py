"""A handler shipped by value: cloudpickle bytes as text, with the Python version that made them.

A step defined in a notebook cell or a script's ``__main__`` cannot be imported by module path in
a container, so a compiled pipeline carries it pickled (``--handler-pickle PAYLOAD`` of
``python -m mlflowlet.entrypoint``). The payload is ``py<major>.<minor>:`` followed by the
base64 of the zlib-compressed cloudpickle bytes. Pickled code runs only under the Python minor
version that pickled it (bytecode and pickle layouts differ between versions), so
:func:`decode_handler` checks the version before unpickling and refuses a mismatch in one line
naming both versions.

cloudpickle is imported only here, inside the functions: ``import mlflowlet`` stays light.
"""

from __future__ import annotations

import base64
import binascii
import sys
import zlib
from typing import Any

from .errors import CompileError, ConfigError

# One command-line argument may hold at most 128 KiB on Linux (MAX_ARG_STRLEN), and the whole
# compiled workflow is one Kubernetes object (etcd's request limit: ~1.5 MiB) that KFP also
# stores: a payload stays well under the first, all of a pipeline's under the second.
MAX_PAYLOAD_CHARS = 100_000
MAX_TOTAL_PAYLOAD_CHARS = 800_000

__all__ = [
    "MAX_PAYLOAD_CHARS",
    "MAX_TOTAL_PAYLOAD_CHARS",
    "decode_handler",
    "encode_handler",
    "python_version",
]


def python_version() -> str:
    """Return this interpreter's ``major.minor`` (what a payload records)."""
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


class _Refused(Exception):
    def __init__(self, obj: object) -> None:
        super().__init__(type(obj).__name__)
        self.obj = obj


def encode_handler(obj: Any, where: str, refuse: tuple[type, ...] = ()) -> str:
    """Pickle ``obj`` by value and return the payload text.

    Args:
        obj: the handler (a ``Step`` or a function).
        where: what it is, for error messages (``step 'train'``).
        refuse: types that must never be pickled into a compiled workflow (the run context, a
            secrets store: their values would be readable in the YAML).

    Raises:
        CompileError: ``obj`` references an instance of a refused type, cannot be pickled, or
            its payload is larger than :data:`MAX_PAYLOAD_CHARS`.
    """
    import io

    import cloudpickle

    class Pickler(cloudpickle.CloudPickler):  # type: ignore[misc]
        def reducer_override(self, value: Any) -> Any:
            if refuse and isinstance(value, refuse):
                raise _Refused(value)
            return super().reducer_override(value)

    buf = io.BytesIO()
    try:
        Pickler(buf, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(obj)
    except _Refused as exc:
        raise CompileError(
            f"{where}: its handler references a {type(exc.obj).__name__} (a global or closure "
            "variable), which would be pickled into the compiled workflow; use the context the "
            "step receives as its `context` parameter, and read secrets there"
        ) from None
    except Exception as exc:
        raise CompileError(
            f"{where}: its handler cannot be pickled to ship it in the compiled workflow "
            f"({type(exc).__name__}: {exc}); create that object inside the function, or move "
            "the function into a module the image has"
        ) from None
    text = f"py{python_version()}:" + base64.b64encode(zlib.compress(buf.getvalue(), 9)).decode()
    if len(text) > MAX_PAYLOAD_CHARS:
        raise CompileError(
            f"{where}: its pickled handler is {len(text)} characters, over the "
            f"{MAX_PAYLOAD_CHARS} a compiled step carries (a command-line argument is limited to "
            "128 KiB); it captures large globals: load data inside the step, or move the "
            "function into a module built into the image (--image)"
        )
    return text


def decode_handler(text: str, name: str) -> Any:
    """Return the handler a payload holds, after checking its Python version.

    Args:
        text: the payload (:func:`encode_handler`).
        name: the handler's ``module:function``, for error messages.

    Raises:
        ConfigError: the payload was pickled under another Python minor version (the message
            names both), or is not a payload.
    """
    head, sep, body = text.partition(":")
    if not sep or not head.startswith("py"):
        raise ConfigError(f"--handler-pickle for {name!r} is not a pickled handler payload")
    recorded, here = head[2:], python_version()
    if recorded != here:
        raise ConfigError(
            f"handler {name!r} was pickled under Python {recorded}, but this runs Python {here}; "
            f"run it in an image with Python {recorded}, or compile from Python {here}"
        )
    try:
        raw = zlib.decompress(base64.b64decode(body, validate=True))
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise ConfigError(f"--handler-pickle for {name!r} is damaged: {exc}") from None
    import cloudpickle

    try:
        return cloudpickle.loads(raw)
    except Exception as exc:
        raise ConfigError(
            f"handler {name!r} cannot be unpickled here ({type(exc).__name__}: {exc}); the "
            "image lacks a package the function uses"
        ) from None
