"""Port of the Metaflow tutorial ``00-helloworld``.

Original: https://github.com/Netflix/metaflow/blob/master/metaflow/tutorials/00-helloworld/helloworld.py

In Metaflow you write ``self.next(self.hello)`` inside ``start``; in mlflowlet each step is a
function and ``hello().after(start_node)`` orders the calls.
"""

from __future__ import annotations

from mlflowlet import pipeline, step


@step
def start() -> None:
    """The start step."""


@step
def hello() -> None:
    """Say hi."""
    print("Metaflow says: Hi!")


@step
def end() -> None:
    """The end step."""
    print("HelloFlow is all done.")


@pipeline(name="hello-flow")
def hello_flow():
    """start -> hello -> end."""
    s = start()
    h = hello().after(s)
    end().after(h)
