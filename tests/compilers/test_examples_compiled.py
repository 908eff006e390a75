"""The examples' compiled YAML is committed beside them; this compares it byte for byte.

``MLFLOWLET_REGENERATE=1 pytest tests/compilers/test_examples_compiled.py`` rewrites the files.
"""

import os
import re
from pathlib import Path

import pytest
from compiler_checks import argo_schema_errors, kfp_docs, kfp_strict_errors

from mlflowlet.compilers import compile_text, load_pipeline
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers.check import check

EXAMPLES = Path(__file__).parents[2] / "examples"
IMAGE = "ghcr.io/mlflowlet/examples:0.1.0"
REGENERATE = os.environ.get("MLFLOWLET_REGENERATE") == "1"  # read before the env is cleaned
COMPILED = [("train_eval.py", "train_eval")]
_SDK = re.compile(r"^sdkVersion: .*$", re.M)  # kfp stamps its own version into the IR


def _golden(path: Path, text: str) -> str:
    if REGENERATE:
        path.write_text(text)
    assert path.exists(), f"{path.name} is missing: run with MLFLOWLET_REGENERATE=1"
    return path.read_text()


@pytest.mark.parametrize(("filename", "name"), COMPILED)
@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_example_compiles_to_its_golden_file(filename, name, target, tmp_path):
    pipe = load_pipeline(f"{EXAMPLES / filename}:{name}")
    text = compile_text(pipe, target, image=IMAGE)
    golden = _golden(EXAMPLES / f"{Path(filename).stem}.{target}.yaml", text)
    assert _SDK.sub("", text) == _SDK.sub("", golden), \
        f"compiled {target} YAML changed; rerun with MLFLOWLET_REGENERATE=1 if intended"
    if target == "argo":
        import yaml

        doc = yaml.safe_load(golden)
        assert argo_schema_errors(doc) == []
        assert validate_argo(doc, pipe.dag) == []
    else:
        assert kfp_strict_errors(golden, tmp_path) == []
        assert validate_kfp(kfp_docs(golden)[0], pipe.dag) == []


@pytest.mark.slow
@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_train_eval_compiled_runs_like_the_local_run(target):
    pipe = load_pipeline(f"{EXAMPLES / 'train_eval.py'}:train_eval")
    report = check(pipe, target, image=IMAGE, params={"rows": 40})
    assert report.ok, report.summary()
    assert {p.node for p in report.pods} == {"prep", "train", "evaluate"}
    train = next(p for p in report.pods if p.node == "train")
    assert "best_iteration" in train.results
