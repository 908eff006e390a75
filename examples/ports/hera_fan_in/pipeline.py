"""Port of the Hera ``fan_in`` example.

Original: https://github.com/argoproj-labs/hera/blob/main/examples/workflows/loops/fan_in.py

In Hera you write ``fanin(arguments={"values": fout.get_parameter("value")})`` after
``fanout(with_param=g.result)``; in mlflowlet ``fanin(values=collect(fout.results["value"]))``
after ``fanout.map(items=g.output, item_param="my_dict")``. Argo output parameters are strings
(the original writes ``str(value)`` to a file); an mlflowlet result keeps its type (an ``int``).
"""

from __future__ import annotations

import json
import sys

from mlflowlet import collect, pipeline, step


@step
def generate() -> list:
    """Return (and print as JSON) ten dicts."""
    items = [{"value": i} for i in range(10)]
    json.dump(items, sys.stdout)
    return items


@step
def fanout(my_dict: dict) -> dict:
    """Output the content of the "value" key of one dict."""
    print(f"Received object: {my_dict}!")
    return {"value": my_dict["value"]}


@step
def fanin(values: list) -> None:
    """Print every value."""
    print(f"Received values: {values}!")


@pipeline(name="fan-in")
def fan_in():
    """Fan out over generated dicts and collect one output of each."""
    g = generate()
    fout = fanout.map(items=g.output, item_param="my_dict")
    fanin(values=collect(fout.results["value"]))
