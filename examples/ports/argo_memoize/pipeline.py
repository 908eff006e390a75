"""Port of the Argo Workflows ``memoize-simple`` example (memoization with a max age).

Original: https://github.com/argoproj/argo-workflows/blob/main/examples/memoize-simple.yaml

In Argo you write ``memoize: {key: "{{inputs.parameters.message}}", maxAge: "10s"}`` on the
template; in mlflowlet ``@step(cache=timedelta(seconds=10))``. The cache key is derived, not
written: the step's code, its parameters (here ``message``, the original's key) and its inputs'
hashes, so a changed step never reuses a stale result. The ``cowsay {{message}} >
/tmp/hello_world.txt`` container becomes a step whose result ``hello`` is that text (the
original's output parameter ``hello``). KFP v2 has no cache max age: compiling for KFP is
refused, naming it.
"""

from __future__ import annotations

from datetime import timedelta

from mlflowlet import pipeline, step

COW = r"""        \   ^__^
         \  (oo)\_______
            (__)\       )\/\
                ||----w |
                ||     ||"""


def cowsay(message: str) -> str:
    """Return what ``cowsay message`` prints."""
    line = "-" * (len(message) + 2)
    return f" {line}\n< {message} >\n {line}\n{COW}\n"


@step(cache=timedelta(seconds=10))
def whalesay(message: str) -> dict:
    """Say the message the way ``cowsay`` does; the text is output parameter ``hello``."""
    text = cowsay(message)
    print(text, end="")
    return {"hello": text}


@pipeline(name="memoized-simple-workflow")
def memoized_simple_workflow(message: str = "test-5"):
    """One memoized step, reused for 10 seconds."""
    whalesay(message=message)
