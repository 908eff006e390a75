"""Local Spark: the handler runs in this process with a local ``SparkSession`` (``context.spark``).

``new_runner(kind='spark', master='local[*]')`` (or ``SparkRuntime(master='local[2]')``) returns
this runtime; it needs pyspark (``pip install 'mlflowlet[spark]'``) and a Java runtime. Binding,
recording and hyper-parameters are the local runtime's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, MissingDependencyError
from ..model import RunObject
from .local import LocalRuntime

if TYPE_CHECKING:
    from ..db.base import RunDB

__all__ = ["LocalSparkRuntime"]


class LocalSparkRuntime(LocalRuntime):
    """Runs the handler here with a local Spark session.

    Args:
        command: where the handler lives (as for the local runtime).
        master: ``'local[*]'`` or ``'local[N]'``.
        spark_conf: ``spark.*`` settings given to the session builder.
        **options: common runtime options (``handler``, ...); the SparkApplication's own
            settings (executors, image, ...) have no effect here.
    """

    kind = "spark"

    def __init__(
        self,
        command: str = "",
        master: str = "local[*]",
        spark_conf: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if not str(master).startswith("local"):
            raise ConfigError(
                f"master {master!r}: local Spark runs with 'local[*]' or 'local[N]'; leave "
                "master empty to run a SparkApplication on Kubernetes"
            )
        super().__init__(command, **options)
        self.master = master
        self.spark_conf = {str(k): str(v) for k, v in (spark_conf or {}).items()}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} master={self.master!r} command={self.command!r}>"

    def with_limits(self, *args: Any, **kwargs: Any) -> Any:
        """Local Spark has no pod to limit: GPUs and resource limits are refused.

        Raises:
            ConfigError: always, naming the master and where limits apply.
        """
        gpus = kwargs.get("gpus", args[2] if len(args) > 2 else None)
        what = "GPUs" if gpus is not None else "resource limits"
        raise ConfigError(
            f"{'gpus' if gpus is not None else 'with_limits'}: the spark runtime with "
            f"master={self.master!r} (local Spark) cannot use {what}; drop them, or run on "
            "Kubernetes with kind='spark' (no master), 'job' or 'mpijob'"
        )

    def _before_run(self, run: RunObject, handler: Any, db: RunDB, **options: Any) -> None:
        super()._before_run(run, handler, db, **options)
        try:
            import pyspark  # noqa: F401
        except ImportError:
            raise MissingDependencyError("pyspark", "spark") from None

    def _execute(self, run: RunObject, handler: Any, db: RunDB) -> RunObject:
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.master(self.master).appName(run.metadata.name)
        for key, value in sorted(self.spark_conf.items()):
            builder = builder.config(key, value)
        builder.getOrCreate()  # context.spark finds the active session
        return super()._execute(run, handler, db)
