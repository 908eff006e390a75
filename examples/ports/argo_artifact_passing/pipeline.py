"""Port of the Argo Workflows ``artifact-passing`` example.

Original: https://github.com/argoproj/argo-workflows/blob/main/examples/artifact-passing.yaml

In Argo a template declares ``outputs.artifacts: [{name: hello-art, path: ...}]`` and the next
step takes ``from: "{{steps.generate-artifact.outputs.artifacts.hello-art}}"``; in mlflowlet
``@step(outputs=["hello-art"])`` logs it and the consumer gets ``g.outputs["hello-art"]`` as a
``DataItem``. (The original's ``sleep 1`` is left out: it computes nothing.)
"""

from __future__ import annotations

from mlflowlet import DataItem, pipeline, step


@step(outputs=["hello-art"])
def hello_world_to_file(context) -> None:
    """``echo hello world | tee /tmp/hello_world.txt``."""
    print("hello world")
    context.log_artifact("hello-art", body="hello world\n", format="txt")


@step
def print_message_from_file(message: DataItem) -> None:
    """``cat /tmp/message``."""
    print(message.get().decode(), end="")


@pipeline(name="artifact-passing")
def artifact_example():
    """Generate an artifact, then print it in the next step."""
    generate = hello_world_to_file.with_options(name="generate-artifact")()
    print_message_from_file.with_options(name="consume-artifact")(
        message=generate.outputs["hello-art"]
    )
