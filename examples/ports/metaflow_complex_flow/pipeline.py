"""Port of the Metaflow tutorial ``00-helloworld/complex_flow.py`` (nested branches and joins).

Original: https://github.com/Netflix/metaflow/blob/master/metaflow/tutorials/00-helloworld/complex_flow.py

In Metaflow you write ``self.next(self.br1, self.br2)`` to branch and ``def join3(self,
br_inp)`` reading ``br_inp.join1.var1``; in mlflowlet branches are independent calls ordered
with ``.after(...)``, and a join reads its inputs' values through their results
(``join3(var1=j1.results["var1"], var2=j2.results["var2"])``).
"""

from __future__ import annotations

from mlflowlet import pipeline, step

RULE = "_______________________________________"


@step
def start() -> None:
    """The 'start' step."""
    print("START step:\n We are now inside the START step - Hello World!\n")


@step
def br1() -> None:
    """Branch 1."""
    print(f"\n\n{RULE}\n BR1 -> BR11 and BR12 \n\n\n{RULE}")


@step
def br2() -> None:
    """Branch 2."""
    print(f"\n\n{RULE}\n BR2 -> BR21 and BR22 \n____{RULE}")


@step
def br11() -> None:
    """Branch 1.1."""
    print(f"\n\n{RULE}\n BR11 -> JOIN1\n\n\n{RULE}")


@step
def br12() -> None:
    """Branch 1.2."""
    print(f"\n\n{RULE}\n BR 12 -> JOIN1 \n____{RULE}")


@step
def br21() -> None:
    """Branch 2.1."""
    print(f"\n\n{RULE}\n BR21 -> JOIN2\n\n\n{RULE}")


@step
def br22() -> None:
    """Branch 2.2."""
    print(f"\n\n{RULE}\n BR22 -> JOIN2 \n____{RULE}")


@step
def join1() -> dict:
    """Join branches 1.1 and 1.2."""
    print(f"\n\n{RULE}\n BR11 & BR12 -> JOIN1 ")
    var1 = 200
    print("Inside join1; var = ", var1)
    print(f"____{RULE}")
    return {"var1": var1}


@step
def join2() -> dict:
    """Join branches 2.1 and 2.2."""
    print(f"\n\n{RULE}\n BR21 & BR22 -> JOIN2 ")
    var2 = 100
    print("Inside join2; var = ", var2)
    print(f"____{RULE}")
    return {"var2": var2}


@step
def join3(var1: int, var2: int) -> None:
    """Join both joins, reading a value from each."""
    print(f"\n\n{RULE}\n JOIN1 & JOIN2 -> JOIN3")
    print(
        "Verifying all input paths are correct by accessing same variable from"
        "both branches of the join..."
    )
    print("JOIN1 var = ", var1)
    print("JOIN2 var = ", var2)
    print(f"____{RULE}")


@step
def end() -> None:
    """The 'end' step."""
    print(f"\n\n{RULE}\nEND step:\n We have reached the END step!\n")
    print("HelloFlow is all done.")
    print(f"____{RULE}")


@pipeline(name="complex-flow")
def complex_flow():
    """start -> (br1 -> (br11, br12) -> join1, br2 -> (br21, br22) -> join2) -> join3 -> end."""
    s = start()
    b1 = br1().after(s)
    b2 = br2().after(s)
    j1 = join1().after(br11().after(b1), br12().after(b1))
    j2 = join2().after(br21().after(b2), br22().after(b2))
    j3 = join3(var1=j1.results["var1"], var2=j2.results["var2"])
    end().after(j3)
