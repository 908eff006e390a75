"""Port of the Kubeflow Pipelines SDK test pipeline ``if_elif_else``.

Original: https://github.com/kubeflow/pipelines/blob/master/sdk/python/test_data/pipelines/if_elif_else.py

In KFP you write ``dsl.If`` / ``dsl.Elif`` / ``dsl.Else``; in mlflowlet three ``condition``
blocks, each excluding the earlier ones with ``&`` (what KFP compiles ``Elif``/``Else`` to).

Test seam (the only addition): ``force_flip_result`` forces the flip (the KFP ``condition``
sample's device); empty, the default, flips at random as the original does.
"""

from __future__ import annotations

import random

from mlflowlet import condition, pipeline, step


@step
def flip_coin(force_flip_result: str = "") -> str:
    """Return heads, tails or draw, at random."""
    if force_flip_result:
        return force_flip_result
    val = random.randint(0, 2)
    if val == 0:
        return "heads"
    elif val == 1:
        return "tails"
    else:
        return "draw"


@step
def print_and_return(text: str) -> str:
    """Print the text and return it."""
    print(text)
    return text


@pipeline(name="flip-coin-pipeline")
def flip_coin_pipeline(force_flip_result: str = ""):
    """Print which side the coin fell on (or that it was a draw)."""
    flip_coin_task = flip_coin(force_flip_result=force_flip_result)
    heads = flip_coin_task.output == "heads"
    tails = flip_coin_task.output == "tails"
    with condition(heads):
        print_and_return(text="Got heads!")
    with condition((flip_coin_task.output != "heads") & tails):  # dsl.Elif
        print_and_return(text="Got tails!")
    with condition((flip_coin_task.output != "heads") & (flip_coin_task.output != "tails")):
        print_and_return(text="Draw!")  # dsl.Else
