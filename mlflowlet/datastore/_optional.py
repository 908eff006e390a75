"""Import an optional dependency, or fail with the extra that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from mlflowlet.errors import MissingDependencyError


def require(module: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``extra``.

    Args:
        module: the module to import, e.g. ``"pandas"`` or ``"pyarrow.parquet"``.
        extra: the mlflowlet extra that installs it (``"pandas"``, ``"s3"``, ``"plot"``).
        package: the distribution name when it differs from the top-level module name.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: the module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module.partition(".")[0]
        raise MissingDependencyError(name, extra) from exc
