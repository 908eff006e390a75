"""Secret values hidden in any JSON-like value (strings, dict keys, lists), keys kept distinct."""

from __future__ import annotations

from typing import Any


def masked(value: Any, mask: Any) -> Any:
    """Return ``value`` with every string, dict keys included, passed through ``mask``."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            new = mask(key) if isinstance(key, str) else key
            if new in out:  # two keys that differ only by a secret value: keep both
                new = next(
                    f"{new}#{n}" for n in range(2, len(value) + 2) if f"{new}#{n}" not in out
                )
            out[new] = masked(item, mask)
        return out
    if isinstance(value, (list, tuple)):
        return [masked(v, mask) for v in value]
    return value
