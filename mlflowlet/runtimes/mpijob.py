"""The MPIJob runtime (its home is :mod:`mlflowlet.runtimes.k8s.mpijob`; kept importable here)."""

from __future__ import annotations

from .k8s.mpijob import MPIJobRuntime

__all__ = ["MPIJobRuntime"]
