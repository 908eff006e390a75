"""The Spark runtimes: a SparkApplication on Kubernetes, or local Spark with ``master='local[*]'``.

Their homes are :mod:`mlflowlet.runtimes.k8s.spark` and :mod:`mlflowlet.runtimes.spark_local`;
``SparkRuntime(master='local[*]')`` returns a :class:`LocalSparkRuntime`.
"""

from __future__ import annotations

from .k8s.spark import DEFAULT_MAIN_FILE, SparkRuntime
from .spark_local import LocalSparkRuntime

__all__ = ["DEFAULT_MAIN_FILE", "LocalSparkRuntime", "SparkRuntime"]
