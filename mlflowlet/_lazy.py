"""Lazy re-exports for package ``__init__`` modules: a public name loads its module on first use."""

from __future__ import annotations

import importlib
from typing import Any


def load(package: str, where: dict[str, str], namespace: dict[str, Any], name: str) -> Any:
    """Import ``name`` from the module ``where`` names for it and cache it in ``namespace``.

    Raises:
        AttributeError: ``name`` is not one of the package's lazy names.
    """
    module = where.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    namespace[name] = value
    return value
