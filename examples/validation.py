"""The seed's second pipeline step: a plain script that validates the model the first one wrote."""

from mlflowlet import get_or_create_ctx


def validation():
    context = get_or_create_ctx("validation")
    model = context.get_input("model.txt")  # the training step's output, wherever it landed
    body = model.get().decode()
    context.logger.info(f"validating {model.url}: {body!r}")
    context.log_result("model_ok", body == "abc is 123")
    context.log_artifact("validation.txt", body=f"model said: {body}".encode())


if __name__ == "__main__":
    validation()
