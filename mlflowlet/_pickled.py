"""A handler shipped by value: cloudpickle bytes as text, with the Python version that made them.

A step defined in a notebook cell or a script's ``__main__`` cannot be imported by module path in
a container, so a compiled pipeline carries it pickled (``--handler-pickle PAYLOAD`` of
``python -m mlflowlet.entrypoint``). The payload is ``py<major>.<minor>:`` followed by the
base64 of the zlib-compressed cloudpickle bytes. Pickled code runs only under the Python minor
version that pickled it (bytecode and pickle layouts differ between versions), so
:func:`decode_handler` checks the version before unpickling and refuses a mismatch in one line
naming both versions.

A payload is readable by anyone who reads the compiled YAML, and a function pickled by value
carries the module globals it references (and its closure and defaults) by value. So a handler
capturing a credential is refused at compile time, naming the step and the global: a global or
closure variable whose name looks like a credential's (:data:`CREDENTIAL_NAME`, the rule the
compiler applies to plain ``env`` values) holding a string, or any captured value holding the
value of a credential-named environment variable of the compiling process.

cloudpickle is imported only here, inside the functions: ``import mlflowlet`` stays light.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
import types
import zlib
from typing import Any

from .errors import CompileError, ConfigError

# One command-line argument may hold at most 128 KiB on Linux (MAX_ARG_STRLEN), and the whole
# compiled workflow is one Kubernetes object (etcd's request limit: ~1.5 MiB) that KFP also
# stores: a payload stays well under the first, all of a pipeline's under the second.
MAX_PAYLOAD_CHARS = 100_000
MAX_TOTAL_PAYLOAD_CHARS = 800_000
# A name that holds a credential (env values, captured globals); see compilers._options._env.
# TOKEN but not TOKENIZER / TOKENS (HF's TOKENIZERS_PARALLELISM, a tokenizer's name, MAX_TOKENS)
CREDENTIAL_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|TOKEN(?!IZ|S)|PRIVATE_KEY|API_KEY|CREDENTIAL", re.I
)
MIN_SECRET_CHARS = 8  # an environment credential shorter than this ("1", "true") is not searched

__all__ = [
    "CREDENTIAL_NAME",
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

    captured: dict[str, Any] = {}  # every global and closure variable pickled by value

    class Pickler(cloudpickle.CloudPickler):  # type: ignore[misc]
        def reducer_override(self, value: Any) -> Any:
            if refuse and isinstance(value, refuse):
                raise _Refused(value)
            if isinstance(value, types.FunctionType) and not _by_reference(value):
                captured.update(_captures(value, where))
            return super().reducer_override(value)

    buf = io.BytesIO()
    try:
        Pickler(buf, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(obj)
    except CompileError:
        raise
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
    _refuse_env_secrets(buf.getvalue(), captured, where)
    text = f"py{python_version()}:" + base64.b64encode(zlib.compress(buf.getvalue(), 9)).decode()
    if len(text) > MAX_PAYLOAD_CHARS:
        raise CompileError(
            f"{where}: its pickled handler is {len(text)} characters, over the "
            f"{MAX_PAYLOAD_CHARS} a compiled step carries (a command-line argument is limited to "
            "128 KiB); it captures large globals: load data inside the step, or move the "
            "function into a module built into the image (--image)"
        )
    return text


def _by_reference(fn: Any) -> bool:
    """Whether cloudpickle pickles ``fn`` by reference (an importable module's function)."""
    from cloudpickle import cloudpickle as impl

    rule = getattr(impl, "_should_pickle_by_reference", None)  # cloudpickle's own, when it has it
    if rule is None:
        return fn.__module__ not in ("__main__", None) and "<locals>" not in fn.__qualname__
    return bool(rule(fn))


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _captures(fn: types.FunctionType, where: str) -> dict[str, Any]:
    """Return the globals and closure variables ``fn`` carries by value; refuse a credential's.

    Raises:
        CompileError: one has a credential's name and holds a string (names it, not its value).
    """
    out = {n: fn.__globals__[n] for n in _code_names(fn.__code__) if n in fn.__globals__}
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
        try:
            out[name] = cell.cell_contents
        except ValueError:  # an empty cell (assigned later)
            continue
    for name, value in out.items():
        if CREDENTIAL_NAME.search(name) and isinstance(value, (str, bytes)) and value:
            raise CompileError(_secret_message(where, f"global {name!r}, named as a credential,"))
    return out


def _refuse_env_secrets(raw: bytes, captured: dict[str, Any], where: str) -> None:
    """Refuse a payload holding the value of a credential-named environment variable."""
    for env, value in sorted(os.environ.items()):
        if not CREDENTIAL_NAME.search(env) or len(value) < MIN_SECRET_CHARS:
            continue
        if value.encode("utf-8", "surrogatepass") not in raw:
            continue
        names = [n for n, v in captured.items() if _holds(v, value)]
        held = f"global {names[0]!r}" if names else "a value it captures"
        raise CompileError(
            _secret_message(where, f"{held}, holding the value of environment variable {env!r},")
        )


def _holds(value: Any, text: str, seen: set[int] | None = None) -> bool:
    """Whether a str, or a builtin container's str (keys included), holds ``text``."""
    if isinstance(value, str):
        return text in value
    seen = set() if seen is None else seen
    if id(value) in seen:  # a container holding itself
        return False
    seen.add(id(value))
    if isinstance(value, dict):
        return any(_holds(k, text, seen) or _holds(v, text, seen) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_holds(v, text, seen) for v in value)
    return False


def _secret_message(where: str, what: str) -> str:
    return (
        f"{where}: its handler captures {what} which would be pickled into the compiled "
        "workflow in plain text; read the secret inside the step with context.get_secret(KEY) "
        "and give the step secrets= (a Kubernetes secret reference)"
    )


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
