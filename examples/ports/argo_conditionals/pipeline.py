"""Port of the Argo Workflows ``conditionals`` example.

Original: https://github.com/argoproj/argo-workflows/blob/main/examples/conditionals.yaml

In Argo you write ``when: "{{inputs.parameters.should-print}} == true"`` on a string
parameter whose value is ``"true"``; in mlflowlet ``with condition(should_print == "true"):``
on a ``str`` pipeline parameter. The original's third step (``print-hello-expr-json``) reads
``workflow.parameters.json``, a parameter the example never declares, through ``jsonpath``;
it is left out (a JSONPath condition is not expressible, see README).
"""

from __future__ import annotations

from mlflowlet import condition, pipeline, step


@step
def argosay() -> None:
    """Say hello (``cowsay hello``)."""
    print("hello")


@pipeline(name="conditional")
def conditional_example(should_print: str = "true"):
    """Print hello twice (govaluate and expr forms of the same test) when should_print is true."""
    with condition(should_print == "true"):
        argosay.with_options(name="print-hello-govaluate")()
        argosay.with_options(name="print-hello-expr")()
