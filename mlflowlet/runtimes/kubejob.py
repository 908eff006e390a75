"""The Kubernetes job runtime (at home in :mod:`mlflowlet.runtimes.k8s.job`; importable here)."""

from __future__ import annotations

from .k8s.job import KubeJobRuntime

__all__ = ["KubeJobRuntime"]
