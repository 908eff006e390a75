"""Directory artifacts and URL inputs compiled: strict on both targets, checked by --check."""

import os

import dir_pipelines as dp
import pytest
from compiler_checks import argo_args, argo_schema_errors, kfp_docs, kfp_strict_errors

from mlflowlet.compilers import compile, compile_text
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers.check import check
from mlflowlet.errors import ConfigError

TARGETS = ["argo", "kfp"]
SECRET = "wJalrXUtnFEMI/K7MDENG"


def test_directory_artifacts_compile_to_each_engines_artifacts_strictly(tmp_path):
    doc = compile(dp.dirs, "argo")
    assert argo_schema_errors(doc) == [] and validate_argo(doc, dp.dirs.dag) == []
    args = argo_args(doc, "save-dir")
    assert args[args.index("--output") + 1] == "model_dir=/tmp/mlflowlet/outputs/model_dir/"
    read = argo_args(doc, "read-dir")
    assert read[read.index("--input") + 1] == "model=/tmp/mlflowlet/inputs/model/"
    text = compile_text(dp.dirs, "kfp")
    assert kfp_strict_errors(text, tmp_path) == []
    spec = kfp_docs(text)[0]
    assert validate_kfp(spec, dp.dirs.dag) == []
    outs = spec["components"]["comp-save-dir"]["outputDefinitions"]["artifacts"]
    assert outs["model_dir"]["artifactType"]["schemaTitle"] == "system.Model"


def test_a_url_input_compiles_to_a_string_parameter_the_step_opens(tmp_path):
    doc = compile(dp.url_input, "argo")
    assert argo_schema_errors(doc) == [] and validate_argo(doc, dp.url_input.dag) == []
    assert doc["spec"]["arguments"]["parameters"] == [{"name": "data"}]
    args = argo_args(doc, "count-bytes")
    assert args[args.index("--input-url") + 1] == "data={{inputs.parameters.data}}"
    assert "--param" not in args and "--input" not in args
    text = compile_text(dp.url_input, "kfp")
    assert kfp_strict_errors(text, tmp_path) == []
    spec = kfp_docs(text)[0]
    assert validate_kfp(spec, dp.url_input.dag) == []
    assert spec["root"]["inputDefinitions"]["parameters"] == {"data": {"parameterType": "STRING"}}
    [executor] = spec["deploymentSpec"]["executors"].values()
    assert "data={{$.inputs.parameters['data']}}" in executor["container"]["args"]


@pytest.mark.parametrize("target", TARGETS)
def test_a_url_with_credentials_never_reaches_the_compiled_workflow(target):
    url = f"s3://AKIAEXAMPLE:{SECRET}@bucket/key"
    with pytest.raises(ConfigError) as err:
        compile(dp.url_input, target, params={"data": url})
    assert SECRET not in str(err.value) and "pipeline input 'data'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        check(dp.url_input, target, params={"data": url})
    assert SECRET not in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_compiled_directory_artifacts_match_the_local_run(target):
    report = check(dp.dirs, target, params={"n": 4})
    assert report.ok, report.summary()
    listing = '"sub dir/config \\u00fc.json=8,weights.bin=4"'
    assert report.outputs["listing"] == ("parameter", listing)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_compiled_url_inputs_match_the_local_run_for_files_and_folders(target, tmp_path):
    (tmp_path / "in put é.txt").write_bytes(b"hello")
    report = check(dp.url_input, target, params={"data": f"file://{tmp_path}/in put é.txt"})
    assert report.ok and report.outputs["size"] == ("parameter", '"in put \\u00e9.txt=5"'), (
        report.summary())
    folder = tmp_path / "folder"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.bin").write_bytes(b"123")
    report = check(dp.url_input, target, params={"data": f"{folder}/"})
    assert report.ok and report.outputs["size"] == ("parameter", '"a/x.bin=3"'), report.summary()


@pytest.fixture
def s3_env(seaweedfs, monkeypatch):
    bucket = f"urls-{os.urandom(6).hex()}"
    client = seaweedfs.client()
    client.create_bucket(Bucket=bucket)
    for name, value in seaweedfs.secrets.items():
        monkeypatch.setenv(name, value)
    return bucket, client


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_compiled_s3_key_and_prefix_inputs_match_the_local_run(target, s3_env):
    bucket, client = s3_env
    client.put_object(Bucket=bucket, Key="raw/data é.csv", Body=b"a,b\n1,2\n")
    client.put_object(Bucket=bucket, Key="raw/dir/one.txt", Body=b"1")
    report = check(dp.url_input, target, params={"data": f"s3://{bucket}/raw/data é.csv"})
    assert report.ok and report.outputs["size"] == ("parameter", '"data \\u00e9.csv=8"'), (
        report.summary())
    report = check(dp.url_input, target, params={"data": f"s3://{bucket}/raw/dir/"})
    assert report.ok and report.outputs["size"] == ("parameter", '"one.txt=1"'), report.summary()


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_a_missing_key_fails_the_step_on_both_sides_naming_it(target, s3_env):
    bucket, _ = s3_env
    report = check(dp.url_input, target, params={"data": f"s3://{bucket}/no/such.csv"})
    assert report.ok and report.status == "Failed", report.summary()
    run = dp.url_input.run(data=f"s3://{bucket}/no/such.csv")
    step = run.steps["count_bytes"]
    last = step.error.strip().splitlines()[-1]
    assert run.state == step.state == "error"
    assert "input 'data'" in last and f"s3://{bucket}/no/such.csv" in last, last


@pytest.mark.parametrize("target", TARGETS)
def test_a_default_url_with_credentials_is_refused_locally_and_when_compiling(target):
    from mlflowlet.pipelines import pipeline

    @pipeline(image=dp.IMAGE)
    def leaky(data: dp.DataItem = f"s3://AKIAEXAMPLE:{SECRET}@bucket/key"):  # type: ignore[assignment]
        dp.count_bytes(data=data)

    for attempt in (lambda: compile(leaky, target), leaky.run):
        with pytest.raises(ConfigError) as err:
            attempt()
        assert SECRET not in str(err.value) and "pipeline input 'data'" in str(err.value)


@pytest.mark.parametrize("target", TARGETS)
def test_a_presigned_url_is_refused_locally_and_when_compiling(target):
    # a signed URL is a bearer credential: it must not land in the compiled YAML's defaults
    from mlflowlet.pipelines import pipeline

    url = f"https://b.s3.amazonaws.com/k.csv?X-Amz-Credential=AKIA&X-Amz-Signature={SECRET}"

    @pipeline(image=dp.IMAGE)
    def signed(data: dp.DataItem = url):  # type: ignore[assignment]
        dp.count_bytes(data=data)

    for attempt in (lambda: compile(signed, target), signed.run,
                    lambda: compile(dp.url_input, target, params={"data": url})):
        with pytest.raises(ConfigError) as err:
            attempt()
        assert SECRET not in str(err.value) and "pipeline input 'data'" in str(err.value)
