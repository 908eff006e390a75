"""Port of the Hera ``dynamic_fanout`` example.

Original: https://github.com/argoproj-labs/hera/blob/main/examples/workflows/loops/dynamic_fanout.py

In Hera you write ``consume(with_param=g.result)`` over a script's JSON stdout; in mlflowlet
``consume.map(items=g.output, item_param="value")`` over the step's returned list (the step
still prints the JSON, without a trailing newline, as the original does).

Test seam (the only addition): ``force_count`` fixes the list length the original draws with
``random.randint(8, 12)``; 0, the default, draws it at random.
"""

from __future__ import annotations

import json
import random
import sys

from mlflowlet import pipeline, step


@step
def generate(force_count: int = 0) -> list:
    """Return (and print as JSON) a list of 8 to 12 numbers."""
    values = [i for i in range(force_count or random.randint(8, 12))]
    json.dump(values, sys.stdout)
    return values


@step
def consume(value: int) -> None:
    """Print one value."""
    print(f"Received value: {value}!")


@pipeline(name="dynamic-fanout")
def dynamic_fanout(force_count: int = 0):
    """Fan out over a list only known at run time."""
    g = generate(force_count=force_count)
    consume.map(items=g.output, item_param="value")
