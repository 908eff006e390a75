"""Pipelines passing directory artifacts and URL inputs (#13 caching and artifacts).

Importable by module path, as a container would import them.
"""

from __future__ import annotations

import os
import tempfile

from mlflowlet.datastore import DataItem
from mlflowlet.pipelines import pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"


@step(outputs={"model_dir": "model"})
def save_dir(context, n: int = 2):
    root = os.path.join(tempfile.mkdtemp(dir=os.getcwd()), "model dir é")  # under tmp_path
    os.makedirs(os.path.join(root, "sub dir"), exist_ok=True)
    with open(os.path.join(root, "weights.bin"), "wb") as fh:
        fh.write(b"w" * n)
    with open(os.path.join(root, "sub dir", "config ü.json"), "w") as fh:
        fh.write(f'{{"n": {n}}}')
    context.log_artifact("model_dir", local_path=root)


def listing(path: str) -> str:
    """``relative path=size`` of every file under ``path``, sorted, comma-separated."""
    names = []
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), path)
            with open(os.path.join(dirpath, name), "rb") as fh:
                names.append(f"{rel}={len(fh.read())}")
    return ",".join(sorted(names))


@step
def read_dir(model: DataItem) -> str:
    return listing(model.local())


@pipeline(image=IMAGE)
def dirs(n: int = 3):
    s = save_dir(n=n)
    return {"listing": read_dir(model=s.outputs["model_dir"]).output}


@step
def count_bytes(data: DataItem) -> str:
    path = data.local()
    if os.path.isdir(path):
        return listing(path)
    with open(path, "rb") as fh:
        return f"{os.path.basename(path)}={len(fh.read())}"


@pipeline(image=IMAGE)
def url_input(data: DataItem):
    return {"size": count_bytes(data=data).output}
