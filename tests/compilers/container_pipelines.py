"""Pipelines with container steps (importable: compiled Python steps run by module path)."""

from mlflowlet import container_step, pipeline, step

IMAGE = "registry.example/mlflowlet-test:1"

# a shell tool: counts words, writes a label; prints on stdout and stderr
count = container_step(
    "count",
    "busybox:1.36",
    ["sh", "-c"],
    [
        "printf '%s' \"{{inputs.text}}\" | wc -w > {{outputs.words}}; "
        "printf '%s-%s' \"{{inputs.text}}\" \"{{inputs.suffix}}\" > {{outputs.label}}; "
        "echo counted; echo note >&2"
    ],
    inputs={"text": None, "suffix": "end"},
    outputs={"words": int, "label": str},
)

# another language: python3 upper-cases its argument
shout = container_step(
    "shout",
    "python:3.12-slim",
    ["python3", "-c", "import sys; open(sys.argv[2], 'w').write(sys.argv[1].upper())"],
    ["{{inputs.s}}", "{{outputs.up}}"],
    inputs=["s"],
    outputs=["up"],
)

missing = container_step(
    "missing", "jq:1", ["mlflowlet-no-such-tool"], ["{{outputs.o}}"], outputs=["o"]
)


@step
def double(n: int) -> int:
    """Double a number (reads a container step's typed output)."""
    print("double", n)
    return n * 2


@step
def greet(name: str) -> str:
    """A Python step's result (a container step cannot take it compiled)."""
    return f"hi {name}"


@pipeline(image=IMAGE)
def containers(text: str = "a b c"):
    """Container steps between Python steps."""
    words = count(text=text)
    double(n=words.results["words"])
    shout(s=words.results["label"])


@pipeline(image=IMAGE)
def with_missing(text: str = "x"):
    """A container step whose tool is missing here, and a step that needs its output."""
    gone = missing()
    double.with_options(name="after")(n=gone.results["o"])
    count(text=text)
