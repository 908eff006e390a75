"""What ``mlflowlet run`` knows of a handler's parameters before running it.

The names check hyper-parameters and param-file columns up front; the annotations let a ``-p``
value for a ``str`` parameter stay the text typed (``-p version=1.10`` is ``'1.10'``, not the
float ``1.1``), while other values are read as JSON or Python literals and then coerced by the
handler's hints when it runs.
"""

from __future__ import annotations

import os
from typing import Any

from ._common import parse_pairs

_TEXT = {"str", "Optional[str]", "typing.Optional[str]", "str | None", "None | str"}


def read_params(fn: Any, url: str | None) -> tuple[dict[str, bool], bool] | None:
    """Return ``({name: annotated str}, takes **kwargs)``; None when unknowable (a script).

    A function is read from its signature; a function named in a ``.py`` file from the file's
    syntax tree, without importing (and so running) the script here.
    """
    from .._binding import _strip_optional, handler_signature

    if callable(fn):
        sig = handler_signature(fn)
        text = {p.name: _strip_optional(p.hint) is str for p in sig.params if not p.is_context}
        return text, sig.var_keyword
    if not (isinstance(fn, str) and url and url.endswith(".py") and os.path.isfile(url)):
        return None
    import ast

    try:
        tree = ast.parse(open(url, encoding="utf-8").read())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == fn:
            a = node.args
            names = [x for x in [*a.posonlyargs, *a.args, *a.kwonlyargs] if x.arg != "context"]
            text = {
                x.arg: x.annotation is not None and ast.unparse(x.annotation) in _TEXT
                for x in names
            }
            return text, a.kwarg is not None
    return None


def keep_text(task: Any, items: list[str] | None, fn: Any, url: str | None) -> None:
    """Give ``str`` parameters the ``-p`` text as typed (not its literal reading)."""
    found = read_params(fn, url)
    if not items or found is None:
        return
    for key, value in parse_pairs(items, "-p/--param").items():
        if found[0].get(key):
            task.spec.params[key] = value


def keep_pipeline_text(task: Any, items: list[str] | None, pipe: Any) -> None:
    """Give a pipeline's ``str`` parameters the ``-p`` text as typed."""
    from .._binding import _strip_optional

    raw = parse_pairs(items, "-p/--param")
    for param in getattr(pipe, "params", ()):
        if param.name in raw and _strip_optional(getattr(param, "hint", None)) is str:
            task.spec.params[param.name] = raw[param.name]


def check_iteration_names(task: Any, fn: Any, url: str | None) -> None:
    """Refuse hyper-parameters or param-file columns that name no parameter of the handler."""
    spec = task.spec
    if spec.hyper_params:
        keys, origin = list(spec.hyper_params), "-x"
    elif spec.param_file:
        from ..hyper import read_param_file

        rows = read_param_file(spec.param_file)
        keys = (
            list(rows)
            if isinstance(rows, dict)
            else list(dict.fromkeys(k for r in rows for k in r))
        )
        origin = f"param file {spec.param_file!r} column(s)"
    else:
        return
    found = read_params(fn, url)
    if found is None or found[1]:
        return
    known = list(found[0])
    unknown = [k for k in keys if k not in known]
    if unknown:
        from ..errors import HyperParamError

        name = fn if isinstance(fn, str) else getattr(fn, "__name__", "the handler")
        raise HyperParamError(
            f"{origin} {', '.join(map(repr, unknown))} name no parameter of {name}(); "
            f"its parameters: {', '.join(known) or 'none'}"
        )
