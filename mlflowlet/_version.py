"""The installed mlflowlet version, kept apart so modules need not import the package root."""

from __future__ import annotations

__version__ = "0.1.0"
