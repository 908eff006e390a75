import json
import os

import mlrun_op_steps
import pytest
import yaml
from compiler_checks import kfp_strict_errors
from kfp import compiler, dsl

from mlflowlet.compilers._local_kfp import KFPLocalRunner
from mlflowlet.compilers._validate import validate_kfp
from mlflowlet.errors import CompileError
from mlflowlet.kfp import mlrun_op, run_op

HERE = os.path.dirname(mlrun_op_steps.__file__)


def mlrun_train(p1, p2):
    return mlrun_op("training", command="mlrun_op_steps", handler="train",
                    params={"p1": p1, "p2": p2}, outputs=["model.txt"],
                    image="repo/steps:1")


def mlrun_validate(modelfile):
    return run_op("validation", handler="mlrun_op_steps:validate",
                  inputs={"model.txt": modelfile}, image="repo/steps:1")


@dsl.pipeline(name="seed-pattern")
def seed_pipeline(p1: int = 5, p2: str = "text"):
    train = mlrun_train(p1, p2)
    mlrun_validate(train.outputs["model-txt"])


def _compiled(tmp_path):
    path = tmp_path / "seed.yaml"
    compiler.Compiler().compile(seed_pipeline, str(path))
    return path.read_text()


def test_seed_pattern_compiles_to_valid_ir(tmp_path):
    text = _compiled(tmp_path)
    assert kfp_strict_errors(text, tmp_path) == []
    spec = yaml.safe_load(text)
    assert validate_kfp(spec) == []
    args = spec["deploymentSpec"]["executors"]["exec-training"]["container"]["args"]
    assert args[:2] == ["--handler", "mlrun_op_steps:train"]
    assert "p1={{$.inputs.parameters['p1']}}" in args
    validation = spec["root"]["dag"]["tasks"]["validation"]
    assert validation["inputs"]["artifacts"]["model_txt"]["taskOutputArtifact"] == {
        "outputArtifactKey": "model_txt", "producerTask": "training"}


def test_seed_pattern_runs_and_passes_the_artifact(tmp_path):
    spec = yaml.safe_load(_compiled(tmp_path))
    runner = KFPLocalRunner(spec, str(tmp_path / "run"), params={"p1": 3},
                            env={"PYTHONPATH": HERE})
    assert runner.run() == "Succeeded", [p.log for p in runner.pods]
    by = {p.node: p for p in runner.pods}
    assert by["training"].results == {"accuracy": 6}
    assert by["validation"].results == {"validated": "model p1=3 p2=text"}


def test_hyper_params_and_secrets_go_into_the_task():
    @dsl.pipeline(name="sweep")
    def sweep():
        mlrun_op("sweep", handler="mlrun_op_steps:train", hyperparams={"p1": [1, 2]},
                 selector="max.accuracy", outputs=["model.txt"], image="repo/steps:1",
                 secrets={"TOKEN": "api:token"}, rundb="http://db:8080")

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sweep.yaml")
        compiler.Compiler().compile(sweep, path)
        docs = list(yaml.safe_load_all(open(path)))
    env = {e["name"]: e["value"] for e in
           docs[0]["deploymentSpec"]["executors"]["exec-sweep"]["container"]["env"]}
    config = json.loads(env["MLFLOWLET_EXEC_CONFIG"])
    assert config["spec"]["hyper_params"] == {"p1": [1, 2]}
    assert config["spec"]["selector"] == "max.accuracy"
    assert env["MLFLOWLET_DBPATH"] == "http://db:8080"
    secret = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-sweep"]
    assert secret["secretAsEnv"][0]["keyToEnv"] == [{"envVar": "TOKEN", "secretKey": "token"}]


def test_a_task_without_handler_says_what_to_give():
    with pytest.raises(CompileError, match="handler="):
        mlrun_op("x", command="mlrun_op_steps")
