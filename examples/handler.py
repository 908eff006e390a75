"""Handler functions: mlflowlet injects the context and binds params and inputs by name."""

from mlflowlet import DataItem


def training(context, p1: int = 1, p2: int = 2) -> None:
    """The seed's handler: log two results, a label and a small artifact."""
    context.logger.info(f"training with p1={p1}, p2={p2}")
    context.log_result("accuracy", p1 * 2)
    context.log_result("loss", p1 * 3 - p2)
    context.set_label("framework", "sklearn")
    context.log_artifact("model.txt", body=f"weights for p1={p1}".encode())


def my_func(context, p1: int = 1, p2: str = "a-string") -> dict:
    """Return a dict: each key becomes a result."""
    print(f"my_func got p1={p1} p2={p2}")
    return {"accuracy": p1 * 2, "p2_length": len(p2)}


def read_input(context, infile: DataItem) -> int:
    """Read an input as a DataItem and return its line count (logged as result 'return')."""
    lines = infile.get().decode().splitlines()
    context.log_result("lines", len(lines))
    return len(lines)
