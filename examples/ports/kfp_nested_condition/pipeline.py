"""Port of the Kubeflow Pipelines SDK test pipeline ``pipeline_with_nested_conditions``.

Original: https://github.com/kubeflow/pipelines/blob/master/sdk/python/test_data/pipelines/pipeline_with_nested_conditions.py
(also the ``samples/core/condition/nested_condition.py`` sample).

In KFP you nest ``with dsl.If(...):`` blocks; in mlflowlet you nest ``with condition(...):``
blocks, and a condition may compare two step outputs (``flip2.output == flip3.output``).

Test seam (the only addition): ``force_flip1`` .. ``force_flip4`` force each flip (the KFP
``condition`` sample's ``force_flip_result`` device); empty, the default, flips at random.
"""

from __future__ import annotations

import random

from mlflowlet import condition, pipeline, step


@step
def flip_coin_op(force_flip_result: str = "") -> str:
    """Flip a coin and output heads or tails randomly."""
    if force_flip_result:
        return force_flip_result
    return "heads" if random.randint(0, 1) == 0 else "tails"


@step
def print_op(msg: str) -> None:
    """Print a message."""
    print(msg)


@pipeline(name="nested-conditions-pipeline")
def my_pipeline(
    force_flip1: str = "", force_flip2: str = "", force_flip3: str = "", force_flip4: str = ""
):
    """Two flips, then a third under an always-true condition, a fourth when flips 2 and 3 agree."""
    flip1 = flip_coin_op(force_flip_result=force_flip1)
    print_op(msg=flip1.output)
    flip2 = flip_coin_op(force_flip_result=force_flip2)
    print_op(msg=flip2.output)

    with condition(flip1.output != "no-such-result"):  # always true
        flip3 = flip_coin_op(force_flip_result=force_flip3)
        print_op(msg=flip3.output)

        with condition(flip2.output == flip3.output):
            flip4 = flip_coin_op(force_flip_result=force_flip4)
            print_op(msg=flip4.output)
