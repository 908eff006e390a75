"""Handlers the mlrun_op tests run in their KFP pipeline (importable by module path)."""


def train(context, p1: int = 1, p2: str = "a") -> None:
    context.log_result("accuracy", p1 * 2)
    context.log_artifact("model.txt", body=f"model p1={p1} p2={p2}".encode())


def validate(context) -> None:
    text = context.get_input("model.txt").get().decode()
    context.log_result("validated", text)
