"""Port of the Argo Workflows ``coinflip`` example (conditional steps).

Original: https://github.com/argoproj/argo-workflows/blob/main/examples/coinflip.yaml
(Hera: https://github.com/argoproj-labs/hera/blob/main/examples/workflows/upstream/coinflip.py)

In Argo you write ``when: "{{steps.flip-coin.outputs.result}} == heads"``; in mlflowlet
``with condition(flip.output == "heads"):``. The flip prints its result (Argo's ``result``) and
returns it; the ``echo`` containers become steps that print.

Test seam (the only addition): ``force_flip_result`` forces the flip (the KFP ``condition``
sample's device); empty, the default, flips at random as the original does.
"""

from __future__ import annotations

import random

from mlflowlet import condition, pipeline, step


@step
def flip_coin(force_flip_result: str = "") -> str:
    """Flip a coin and print the result."""
    result = force_flip_result or ("heads" if random.randint(0, 1) == 0 else "tails")
    print(result)
    return result


@step
def heads() -> None:
    """Say it was heads."""
    print("it was heads")


@step
def tails() -> None:
    """Say it was tails."""
    print("it was tails")


@pipeline(name="coinflip")
def coinflip(force_flip_result: str = ""):
    """Flip a coin, then run the step of the side it fell on."""
    flip = flip_coin(force_flip_result=force_flip_result)
    with condition(flip.output == "heads"):
        heads()
    with condition(flip.output == "tails"):
        tails()
