"""Port of the Kubeflow Pipelines ``caching`` sample (its first pipeline).

Original: https://github.com/kubeflow/pipelines/blob/master/samples/core/caching/caching.py

In KFP every task is cached by default (``set_caching_options``); in mlflowlet
``@step(cache=True)``. The sample's third pipeline sets ``max_cache_staleness = 'P0D'``, which
mlflowlet cannot express yet (issue #13: cache staleness).
"""

from __future__ import annotations

import datetime
import time

from mlflowlet import pipeline, step


@step(cache=True)
def do_work_op(seconds: int = 30) -> str:
    """Work for ``seconds`` seconds and return when it finished."""
    print(f"Working for {seconds} seconds.")
    for i in range(seconds):
        print(f"Working: {i}.")
        time.sleep(1)
    print("Done.")
    return datetime.datetime.now().isoformat()


@pipeline(name="caching-pipeline")
def caching_pipeline(seconds: int = 30):
    """All outputs of successful executions are cached."""
    do_work_op(seconds=seconds)
