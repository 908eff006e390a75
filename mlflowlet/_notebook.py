"""A notebook as a plain script: code cells in order, parameters injected papermill-style.

``notebook_to_script(path)`` reads the ``.ipynb`` JSON (nbformat 4) and returns Python source:

* code cells in order, each after a ``# %% cell N`` marker (markdown and raw cells dropped);
* after the cell tagged ``parameters`` (papermill's convention; at the top when there is none),
  an injected cell: every name the parameters cell assigns becomes
  ``name = context.get_param('name', name)``, so the run's params override the defaults and the
  defaults are recorded; params the cell does not declare are set as variables too, as papermill
  injects them;
* IPython syntax has no meaning in a script: display-only magics (``%matplotlib``, ``%config``,
  ``%load_ext autoreload``, ``%autoreload``) are kept as comments, any other magic or shell
  escape (``!pip install``, ``%%bash``) is refused naming the cell and line, because the job
  would silently run without it.

Only the standard library is used, so the conversion is the same wherever it runs (a build,
the entrypoint in a pod, a local run).
"""

from __future__ import annotations

import ast
import json
import os
import re
from typing import Any

from .errors import ConfigError

__all__ = ["notebook_to_script", "script_name"]

_HARMLESS = re.compile(r"^%(matplotlib|config|load_ext\s+autoreload|autoreload)\b")
_MAGIC = re.compile(r"^\s*(%|!)")
_INJECTED = """\
# %% injected parameters (mlflowlet, papermill style): the run's params override the defaults
from mlflowlet import get_or_create_ctx as _mlflowlet_get_ctx

_mlflowlet_context = _mlflowlet_get_ctx({name!r})
{assignments}for _mlflowlet_key, _mlflowlet_value in _mlflowlet_context.parameters.items():
    if _mlflowlet_key.isidentifier() and _mlflowlet_key not in {declared!r}:
        globals()[_mlflowlet_key] = _mlflowlet_value
"""


def script_name(path: str) -> str:
    """Return the script a notebook converts to: ``train.ipynb`` → ``train.py``."""
    return os.path.splitext(os.path.basename(path))[0] + ".py"


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _clean(code: str, where: str) -> str:
    try:
        ast.parse(code)
        return code  # valid Python has no IPython syntax (magics do not parse)
    except SyntaxError:
        pass
    lines = code.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        raise ConfigError(
            f"{where}: cell magic {lines[0].strip()!r} cannot run in a script; rewrite the cell "
            "in Python"
        )
    out = []
    for number, line in enumerate(lines, 1):
        if _MAGIC.match(line):
            stripped = line.strip()
            if _HARMLESS.match(stripped):
                out.append(f"# (IPython, display only) {stripped}")
                continue
            raise ConfigError(
                f"{where} line {number}: {stripped!r} is IPython syntax a script cannot run; "
                "put packages in the image's requirements (build_image(requirements=...)) and "
                "write the rest in Python"
            )
        out.append(line)
    return "\n".join(out)


def _declared(code: str, where: str) -> list[str]:
    """Return the names the parameters cell assigns at its top level, in order."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ConfigError(f"{where} line {exc.lineno}: {exc.msg}") from None
    names: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id not in names:
                names.append(target.id)
    return names


def notebook_to_script(path: str, run_name: str = "") -> str:
    """Return the notebook at ``path`` as a script (see the module docstring).

    Args:
        path: the ``.ipynb`` file.
        run_name: the name ``get_or_create_ctx`` gets (default: the notebook's stem).

    Raises:
        ConfigError: not a readable nbformat-4 notebook, a syntax error in the parameters cell,
            or IPython syntax a script cannot run.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            notebook = json.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read notebook {path!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"notebook {path!r} is not JSON: {exc}") from None
    if not isinstance(notebook, dict) or notebook.get("nbformat") != 4:
        raise ConfigError(f"notebook {path!r} is not an nbformat 4 notebook")
    name = run_name or os.path.splitext(os.path.basename(path))[0]
    cells = [
        (i, c) for i, c in enumerate(notebook.get("cells", [])) if c.get("cell_type") == "code"
    ]
    blocks = [f"# converted by mlflowlet from {os.path.basename(path)}: edit the notebook\n"]
    tagged = [i for i, c in cells if "parameters" in (c.get("metadata") or {}).get("tags", [])]
    declared: list[str] = []
    for index, cell in cells:  # numbered as the notebook numbers them, markdown included
        where = f"notebook {os.path.basename(path)!r} cell {index + 1}"
        code = _clean(_source(cell), where)
        blocks.append(f"# %% cell {index + 1}\n{code}\n")
        if tagged and index == tagged[0]:
            declared = _declared(code, f"{where} (parameters)")
            blocks.append(_injection(name, declared))
    if not tagged:
        blocks.insert(1, _injection(name, []))
    return "\n".join(blocks)


def _injection(name: str, declared: list[str]) -> str:
    assignments = "".join(
        f"{var} = _mlflowlet_context.get_param({var!r}, {var})\n" for var in declared
    )
    return _INJECTED.format(name=name, assignments=assignments, declared=tuple(declared))
