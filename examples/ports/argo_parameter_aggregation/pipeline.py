"""Port of the Argo example ``parameter-aggregation``.

Original: https://github.com/argoproj/argo-workflows/blob/main/examples/parameter-aggregation.yaml

In Argo ``odd-or-even`` fans out over ``[1, 2, 3, 4]`` writing two output parameters,
``divide-by-2`` fans out over all of them at once (``withParam:
"{{steps.odd-or-even.outputs.parameters}}"``, ``{{item.num}}``) under ``when: "{{item.evenness}}
== even"``, and ``print`` fans out over the aggregated results of the items that ran
(``withParam: "{{steps.divide-by-2.outputs.result}}"``). In mlflowlet ``odd_or_even`` returns
both as results, ``divide_by_2.map(items=collect(odd_or_even.results), num=item.num)`` inside
``with condition(item.evenness == "even"):``, and ``print_num.map(items=collect(d.output),
item_param="num")``. Argo's results are text; an mlflowlet result keeps its type (an ``int``).
"""

from __future__ import annotations

from mlflowlet import collect, condition, item, pipeline, step


@step
def odd_or_even(num: int) -> dict:
    """Output the number and whether it is even or odd."""
    evenness = "even" if num % 2 == 0 else "odd"
    print(f"{num} is {evenness}")
    return {"num": num, "evenness": evenness}


@step
def divide_by_2(num: int) -> int:
    """Halve an even number."""
    return num // 2


@step
def print_num(num: int) -> None:
    """Print one halved number."""
    print(num)


@pipeline(name="parameter-aggregation")
def parameter_aggregation():
    """Halve the even numbers of a fan-out and print the aggregated halves."""
    checked = odd_or_even.map(items=[1, 2, 3, 4], item_param="num")
    with condition(item.evenness == "even"):
        halved = divide_by_2.map(items=collect(checked.results), num=item.num)
    print_num.map(items=collect(halved.output), item_param="num")
