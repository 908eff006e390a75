"""``mlflowlet compile``: the command line of the compilers."""

import compiler_pipelines as cp
import pytest
import yaml

from mlflowlet.cli import main


def cli(capsys, *args):
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(list(args))
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err


def test_compile_writes_the_yaml_with_params_secrets_and_image(capsys, tmp_path):
    out = tmp_path / "wf.yaml"
    code, _, err = cli(capsys, "compile", f"{cp.__file__}:diamond", "--target", "argo",
                       "-o", str(out), "--image", "repo/img:2", "-p", "rows=9",
                       "--secret", "TOKEN=api:token", "--env", "MODE=prod")
    assert code == 0, err
    doc = yaml.safe_load(out.read_text())
    assert doc["spec"]["arguments"]["parameters"][0] == {"name": "rows", "value": "9"}
    make = next(t for t in doc["spec"]["templates"] if t["name"] == "make")
    assert make["container"]["image"] == "repo/img:2"  # --image beats @pipeline(image=)
    env = {e["name"]: e for e in make["container"]["env"]}
    assert env["TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "api", "key": "token"}
    assert env["MODE"]["value"] == "prod"


def test_compile_prints_kfp_yaml_to_stdout(capsys):
    code, out, _ = cli(capsys, "compile", f"{cp.__file__}:hyper", "-t", "kfp")
    assert code == 0
    assert yaml.safe_load(out)["pipelineInfo"]["name"] == "hyper"


@pytest.mark.slow
def test_compile_check_runs_the_compiled_workflow(capsys):
    code, out, err = cli(capsys, "compile", f"{cp.__file__}:diamond", "-t", "argo", "--check")
    assert code == 0, err
    assert "argo: 4 container run(s), workflow Succeeded; matches the local run" in out


def test_unknown_target_exits_1_listing_targets(capsys):
    code, _, err = cli(capsys, "compile", f"{cp.__file__}:diamond", "-t", "nope")
    assert code == 1 and "available: argo, kfp" in err


def test_a_name_that_is_not_a_pipeline_is_refused(capsys):
    code, _, err = cli(capsys, "compile", f"{cp.__file__}:make")
    assert code == 1 and "not a @pipeline" in err
