"""Port of the Kubeflow Pipelines ``retry`` sample.

Original: https://github.com/kubeflow/pipelines/blob/master/samples/core/retry/retry.py

In KFP you write ``random_failure_op('0,1,2,3').set_retry(10)``; in mlflowlet
``@step(retries=10)`` and ``random_failure_op.with_options(retries=5)(exit_codes=...)``.

Test seam (the only change): the exit-code lists the original hard-codes (``'0,1,2,3'`` and
``'0,1'``) are pipeline parameters with those defaults, so a test can make the outcome certain.
"""

from __future__ import annotations

import random
import sys

from mlflowlet import pipeline, step


@step(retries=10)
def random_failure_op(exit_codes: str) -> None:
    """A component that fails randomly."""
    exit_code = int(random.choice(exit_codes.split(",")))
    print(exit_code)
    sys.exit(exit_code)


@pipeline(name="retry-random-failures")
def retry_sample_pipeline(exit_codes1: str = "0,1,2,3", exit_codes2: str = "0,1"):
    """Two steps which fail randomly, retried up to 10 and 5 times."""
    random_failure_op(exit_codes=exit_codes1)
    random_failure_op.with_options(retries=5)(exit_codes=exit_codes2)
