"""Port of the Kubeflow Pipelines ``condition`` sample.

Original: https://github.com/kubeflow/pipelines/blob/master/samples/core/condition/condition_v2.py

In KFP you write ``with dsl.Condition(flip1.output == 'heads'):``; in mlflowlet
``with condition(flip1.output == "heads"):`` around the same two steps.

Test seam (the only addition): ``force_flip2`` forces the second flip, as the original's own
``force_flip_result`` forces the first; both default to a random flip, as in the original.
"""

from __future__ import annotations

import random

from mlflowlet import condition, pipeline, step


@step
def flip_coin(force_flip_result: str = "") -> str:
    """Flip a coin and output heads or tails randomly."""
    if force_flip_result:
        return force_flip_result
    return "heads" if random.randint(0, 1) == 0 else "tails"


@step
def print_msg(msg: str) -> None:
    """Print a message."""
    print(msg)


@pipeline(name="condition-v2")
def condition_v2(text: str = "condition test", force_flip_result: str = "", force_flip2: str = ""):
    """Flip a coin; on heads, flip again and print both the flip and the text."""
    flip1 = flip_coin(force_flip_result=force_flip_result)
    print_msg(msg=flip1.output)

    with condition(flip1.output == "heads"):
        flip2 = flip_coin(force_flip_result=force_flip2)  # the original: flip_coin()
        print_msg(msg=flip2.output)
        print_msg(msg=text)
