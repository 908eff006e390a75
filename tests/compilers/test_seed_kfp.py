"""The seed's KFP snippet (examples/seed_kfp.py), as written with mlflowlet for mlrun: it compiles
with kfp's own compiler and its containers' commands run locally (kfp.local's task path, no
Docker), recording into the run DB the snippet names. Then the mount helpers and the seed's
other keywords one by one."""

import importlib
import os
import re
import shutil
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from compiler_checks import kfp_strict_errors
from kfp import compiler, dsl

from mlflowlet import get_run_db
from mlflowlet.compilers._local_kfp import KFPLocalRunner
from mlflowlet.errors import BareImageWarning, CompileError, ConfigError
from mlflowlet.kfp import DEFAULT_IMAGE, mlrun_op
from mlflowlet.platforms import mount_configmap, mount_hostpath, mount_pvc, mount_secret

EXAMPLES = Path(__file__).parents[2] / "examples"
REGENERATE = os.environ.get("MLFLOWLET_REGENERATE") == "1"  # read before the env is cleaned


@pytest.fixture
def seed(tmp_path, monkeypatch):
    """examples/seed_kfp.py imported with the claim's folders pointing under tmp_path."""
    code = tmp_path / "code"
    code.mkdir()
    for name in ("training.py", "validation.py", "seed_kfp.py"):
        shutil.copy(EXAMPLES / name, code / name)
    monkeypatch.setenv("SEED_MOUNT", str(tmp_path))
    monkeypatch.setenv("SEED_CODE", str(code))
    monkeypatch.setenv("SEED_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("SEED_DB", str(tmp_path / "db"))
    monkeypatch.syspath_prepend(str(code))
    sys.modules.pop("seed_kfp", None)
    module = importlib.import_module("seed_kfp")
    yield module
    sys.modules.pop("seed_kfp", None)


def _compile(pipeline, tmp_path):
    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    return path.read_text()


def test_seed_example_compiles_to_its_golden_file(tmp_path, monkeypatch):
    for var in ("SEED_MOUNT", "SEED_CODE", "SEED_ARTIFACTS", "SEED_DB"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("seed_kfp", None)
    try:
        text = _compile(importlib.import_module("seed_kfp").mlrun_pipeline, tmp_path)
    finally:
        sys.modules.pop("seed_kfp", None)
    golden = EXAMPLES / "seed_kfp.kfp.yaml"
    if REGENERATE:
        golden.write_text(text)
    sdk = re.compile(r"^sdkVersion: .*$", re.M)  # kfp stamps its own version into the IR
    assert sdk.sub("", text) == sdk.sub("", golden.read_text()), \
        "compiled YAML changed; rerun with MLFLOWLET_REGENERATE=1 if intended"
    assert "/mnt/pipeline/examples/training.py" in text
    # checked on its own, so the test still proves something when the golden is regenerated
    assert kfp_strict_errors(golden.read_text(), tmp_path) == []


def test_seed_snippet_compiles_with_kfps_compiler(seed, tmp_path):
    text = _compile(seed.mlrun_pipeline, tmp_path)
    assert kfp_strict_errors(text, tmp_path) == []
    spec, platform = yaml.safe_load_all(text)
    training = spec["deploymentSpec"]["executors"]["exec-training"]["container"]
    assert training["image"] == DEFAULT_IMAGE
    assert training["args"][:4] == ["--script", f"{seed.this_path}/training.py",
                                    "--artifact-path", seed.artifacts_path]
    assert "model.txt={{$.outputs.artifacts['model_txt'].path}}/" in training["args"]
    assert "dataset.csv={{$.outputs.artifacts['dataset_csv'].path}}/" in training["args"]
    env = {e["name"]: e["value"] for e in training["env"]}
    assert env["MLFLOWLET_DBPATH"] == seed.db_path
    validation = spec["root"]["dag"]["tasks"]["validation"]
    assert validation["inputs"]["artifacts"]["model_txt"]["taskOutputArtifact"] == {
        "outputArtifactKey": "model_txt", "producerTask": "training"}
    mounts = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor in ("exec-training", "exec-validation"):
        (mount,) = mounts[executor]["pvcMount"]
        assert mount["mountPath"] == seed.mount_path and mount["constant"] == "pipeline-claim"


def test_seed_snippet_runs_locally_and_records_both_steps(seed, tmp_path):
    docs = list(yaml.safe_load_all(_compile(seed.mlrun_pipeline, tmp_path)))
    runner = KFPLocalRunner({"pipeline_spec": docs[0], "platform_spec": docs[1]},
                            str(tmp_path / "run"), params={"p1": 3})
    assert runner.run() == "Succeeded", [p.log for p in runner.pods]
    by = {p.node: p for p in runner.pods}
    assert by["training"].results == {"accuracy": 6, "loss": 9}
    assert by["validation"].results == {"model_ok": True}
    runs = {r.metadata.name: r for r in get_run_db(seed.db_path).list_runs("").objects()}
    assert runs["training"].state == runs["validation"].state == "completed"
    assert runs["training"].spec.params == {"p1": 3, "p2": "text"}
    assert runs["validation"].spec.inputs["model.txt"].endswith("/model.txt")
    validated = runs["validation"].artifact("validation.txt")
    assert validated.get() == b"model said: abc is 123"
    assert validated.url.removeprefix("file://").startswith(seed.artifacts_path)  # out_path
    assert runs["training"].status.code_hash  # the script's own code is on the record


def test_outputs_dict_targets_are_copied_there_and_in_path_prefixes_inputs(tmp_path):
    @dsl.pipeline(name="targets")
    def targets():
        mlrun_op("train", command="/code/training.py", image="repo/img:1",
                 outputs={"model.txt": "/mnt/models/model.txt", "dataset.csv": ""},
                 inputs={"infile.txt": "", "other": "data/other.csv", "abs": "s3://b/k"},
                 in_path="/mnt/inputs", param_file="/code/params.csv", selector="max.accuracy")

    spec = yaml.safe_load(_compile(targets, tmp_path))
    args = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["args"]
    assert args[2:4] == ["--output", "model.txt=/mnt/models/model.txt"]
    for pair in ("infile.txt=/mnt/inputs/infile.txt", "other=/mnt/inputs/data/other.csv",
                 "abs=s3://b/k"):
        assert pair in args
    env = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["env"]
    config = yaml.safe_load(env[0]["value"])
    assert config["spec"]["param_file"] == "/code/params.csv"
    assert config["spec"]["selector"] == "max.accuracy" and config["spec"]["strategy"] == "list"


def test_out_path_from_a_pipeline_parameter(tmp_path):
    @dsl.pipeline(name="outpath")
    def outpath(where: str = "/mnt/a"):
        mlrun_op("train", command="/code/training.py", image="repo/img:1", out_path=where)

    spec = yaml.safe_load(_compile(outpath, tmp_path))
    args = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["args"]
    assert args[2:] == ["--artifact-path", "{{$.inputs.parameters['artifact_path']}}"]


def test_seed_secret_sources_and_refusals(tmp_path):
    @dsl.pipeline(name="secrets")
    def with_sources():
        mlrun_op("train", command="/code/training.py", image="repo/img:1",
                 secrets=["file=/etc/creds/secrets.txt", "env=TOKEN"])

    spec = yaml.safe_load(_compile(with_sources, tmp_path))
    env = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["env"]
    assert yaml.safe_load(env[0]["value"])["spec"]["secret_sources"] == [
        {"kind": "file", "source": "/etc/creds/secrets.txt"}, {"kind": "env", "source": "TOKEN"}]
    with pytest.raises(CompileError, match="values never go into a compiled pipeline"):
        mlrun_op("x", command="/code/t.py", secrets=["inline=TOKEN=abc"])


def test_default_image_is_mlflowlet_image_then_the_runtime_image(tmp_path, monkeypatch):
    @dsl.pipeline(name="img")
    def img():
        mlrun_op("train", command="/code/training.py")

    spec = yaml.safe_load(_compile(img, tmp_path))
    assert spec["deploymentSpec"]["executors"]["exec-train"]["container"]["image"] == \
        DEFAULT_IMAGE
    monkeypatch.setenv("MLFLOWLET_IMAGE", "registry.example/team/ml:2")

    @dsl.pipeline(name="img")  # kfp traces the function when it is decorated
    def img_env():
        mlrun_op("train", command="/code/training.py")

    spec = yaml.safe_load(_compile(img_env, tmp_path))
    assert spec["deploymentSpec"]["executors"]["exec-train"]["container"]["image"] == \
        "registry.example/team/ml:2"


def test_a_bare_base_image_is_warned_unless_it_has_mlflowlet():
    with pytest.warns(BareImageWarning, match="'python:3.11-slim', a bare base image"):
        @dsl.pipeline(name="bare")
        def bare():
            mlrun_op("train", command="/code/training.py", image="python:3.11-slim")
    with warnings.catch_warnings():
        warnings.simplefilter("error", BareImageWarning)

        @dsl.pipeline(name="has")
        def has():
            mlrun_op("train", command="/code/training.py", image="python:3.11-slim",
                     image_has_mlflowlet=True)


def test_mount_helpers_fill_the_kfp_platform_spec(tmp_path):
    @dsl.pipeline(name="mounts")
    def mounts():
        mlrun_op("train", command="/code/training.py", image="repo/img:1").apply(
            mount_pvc("data", "data", "/data")).apply(
            mount_secret("creds", "/etc/creds")).apply(
            mount_configmap("settings", "/etc/settings"))

    _, platform = yaml.safe_load_all(_compile(mounts, tmp_path))
    executor = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert executor["pvcMount"][0]["mountPath"] == "/data"
    assert executor["secretAsVolume"][0]["secretName"] == "creds"
    assert executor["configMapAsVolume"][0]["mountPath"] == "/etc/settings"


@pytest.mark.parametrize("helper, match", [
    (mount_hostpath("/var/data", "/data"), "KFP v2 cannot mount a host path"),
    (mount_secret("creds", "/etc/c", items=[{"key": "a", "path": "a"}]), "drop items="),
    (mount_pvc("c", "v", "relative/path"), "must be absolute"),
])
def test_mounts_kfp_cannot_carry_are_refused(helper, match):
    with pytest.raises(ConfigError, match=match):
        @dsl.pipeline(name="refused")
        def refused():
            mlrun_op("train", command="/code/training.py", image="repo/img:1").apply(helper)


def test_mount_pvc_reads_mlflowlet_pvc_mount(monkeypatch):
    with pytest.raises(ConfigError, match="MLFLOWLET_PVC_MOUNT"):
        mount_pvc()
    monkeypatch.setenv("MLFLOWLET_PVC_MOUNT", "shared:/mnt/shared")
    job = {"kind": "Job", "spec": {"template": {"spec": {"containers": [{"name": "main"}]}}}}
    mount_pvc()(job)
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "pipeline",
                               "persistentVolumeClaim": {"claimName": "shared"}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "pipeline",
                                                     "mountPath": "/mnt/shared"}]


def test_mount_helpers_apply_to_a_kubernetes_job_and_validate():
    pytest.importorskip("kubernetes_validate")
    from mlflowlet import new_runner

    runner = new_runner(kind="job", image="repo/img:1", command="training.py")
    for helper in (mount_pvc("data", "data", "/data"), mount_secret("creds", "/etc/creds"),
                   mount_configmap("settings", "/etc/settings"),
                   mount_hostpath("/var/log", "/host-logs")):
        runner.apply(helper)
    manifest = runner.run(dry_run=True)  # validated against the Kubernetes schema, strict
    pod = manifest["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["data", "secret", "configmap", "hostpath"]
    assert [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]] == [
        "/data", "/etc/creds", "/etc/settings", "/host-logs"]
