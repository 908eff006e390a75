"""Which image a compiled step gets, the bare-image warning, and ``compile|submit --build``.

Images are built by the FAKE docker of ``tests/fake_builders.py`` (no container engine here); the
Argo Server is the recording fake of ``test_submit``.
"""

import warnings
from pathlib import Path

import pytest
from test_submit import FakeServer

from mlflowlet import compile as compile_pipeline
from mlflowlet.cli import main
from mlflowlet.compilers._image import is_bare_image
from mlflowlet.errors import BareImageWarning, CompileError, ConfigError

PIPE = '''
from mlflowlet import pipeline, step
from helpers import double

@step(outputs=["data"])
def prep(context, rows: int = 3):
    context.log_artifact("data", body=b"x" * double(rows))

@step{train_options}
def train(context, data, lr: float = 0.1):
    context.log_result("accuracy", lr)

@pipeline(name="small"{pipe_options})
def small(rows: int = 3):
    d = prep(rows=rows)
    train(data=d.outputs["data"])
'''


def _project(root: Path, train_options: str = "", pipe_options: str = "") -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipe.py").write_text(PIPE.format(train_options=train_options,
                                              pipe_options=pipe_options))
    (root / "helpers.py").write_text("def double(n):\n    return 2 * n\n")
    (root / "requirements.txt").write_text("scikit-learn>=1.4\n")
    (root / "mlflowlet.db").write_text("not copied")
    return f"{root / 'pipe.py'}:small"


def cli(capsys, *args):
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("image, bare", [
    ("python:3.11-slim", True), ("python", True), ("alpine:3.20", True), ("ubuntu:22.04", True),
    ("docker.io/library/python:3.12", True), ("library/debian:12", True),
    ("docker.io/python:3.11", True), ("myorg/python:3.11", False),
    ("ghcr.io/team/python:3.11", False), ("localhost:5000/python:3", False),
    ("repo/img:tag", False), ("python@sha256:" + "a" * 64, True),
])
def test_bare_base_images_are_recognised(image, bare):
    assert is_bare_image(image) is bare


def test_image_order_step_then_compile_then_pipeline_then_mlflowlet_image(tmp_path,
                                                                         monkeypatch):
    from mlflowlet.compilers import load_pipeline

    ref = _project(tmp_path / "p", '(image="repo/train:1")', ', image="repo/pipe:1"')
    pipe = load_pipeline(ref)

    def images(**kw):
        doc = compile_pipeline(pipe, "argo", **kw)
        return {t["name"]: t["container"]["image"] for t in doc["spec"]["templates"]
                if "container" in t}

    assert images() == {"prep": "repo/pipe:1", "train": "repo/train:1"}
    assert images(image="repo/cli:1") == {"prep": "repo/cli:1", "train": "repo/train:1"}
    monkeypatch.setenv("MLFLOWLET_IMAGE", "repo/env:1")
    assert images()["prep"] == "repo/pipe:1"  # code beats the environment's default


def test_mlflowlet_image_is_the_last_default_and_none_at_all_says_how(tmp_path, monkeypatch):
    from mlflowlet.compilers import load_pipeline

    pipe = load_pipeline(_project(tmp_path / "p"))
    with pytest.raises(CompileError, match="MLFLOWLET_IMAGE.*--build"):
        compile_pipeline(pipe, "kfp")
    monkeypatch.setenv("MLFLOWLET_IMAGE", "repo/env:1")
    doc = compile_pipeline(pipe, "kfp")
    images = {e["container"]["image"] for e in doc["deploymentSpec"]["executors"].values()}
    assert images == {"repo/env:1"}


def test_a_bare_image_warns_once_naming_the_steps_unless_they_have_mlflowlet(tmp_path):
    from mlflowlet.compilers import load_pipeline

    pipe = load_pipeline(_project(tmp_path / "p"))
    with pytest.warns(BareImageWarning) as caught:
        compile_pipeline(pipe, "argo", image="python:3.11-slim")
    assert len(caught) == 1 and "'prep', 'train'" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BareImageWarning)
        compile_pipeline(pipe, "argo", image="python:3.11-slim", image_has_mlflowlet=True)
    pipe = load_pipeline(_project(tmp_path / "q", "(image_has_mlflowlet=True)"))
    with pytest.warns(BareImageWarning) as caught:
        compile_pipeline(pipe, "argo", image="python:3.11-slim")
    assert "'prep'" in str(caught[0].message) and "'train'" not in str(caught[0].message)


def test_cli_prints_the_warning_as_one_line(tmp_path, capsys):
    code, out, err = cli(capsys, "compile", _project(tmp_path / "p"), "--image", "alpine",
                         "-o", str(tmp_path / "o.yaml"))
    assert code == 0 and err.count("warning: ") == 1 and "'alpine', a bare base image" in err
    code, out, err = cli(capsys, "compile", _project(tmp_path / "p"), "--image", "alpine",
                         "--image-has-mlflowlet", "-o", str(tmp_path / "o.yaml"))
    assert code == 0 and "warning" not in err


def test_compile_build_builds_the_steps_folder_and_compiles_against_it(tmp_path, capsys,
                                                                      fake_docker, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref = _project(tmp_path / "proj")
    code, _, err = cli(capsys, "compile", ref, "--target", "kfp", "--build",
                       "registry.example/ml/small:1", "--requirements",
                       str(tmp_path / "proj" / "requirements.txt"), "--push",
                       "-o", str(tmp_path / "small.yaml"))
    assert code == 0, err
    assert "built registry.example/ml/small:1 with docker (pushed)" in err
    assert [c.split()[1] for c in fake_docker.calls if c.split()[1] != "info"] == ["build",
                                                                                  "push"]
    files = fake_docker.built_files("registry.example/ml/small:1")
    assert {"./source/pipe.py", "./source/helpers.py", "./requirements.txt"} <= set(files)
    assert "./source/mlflowlet.db" not in files
    text = (tmp_path / "small.yaml").read_text()
    assert "image: registry.example/ml/small:1" in text and "image: repo" not in text


def test_submit_build_submits_against_the_built_image(tmp_path, capsys, fake_docker,
                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)

    def argo(method, path, body):
        return 200, {**body["workflow"], "metadata": {"name": "small-1"}}

    with FakeServer(argo) as fake:
        code, out, err = cli(capsys, "submit", _project(tmp_path / "proj"), "--target", "argo",
                             "--host", fake.url, "--build", "registry.example/ml/small:2")
    assert code == 0, err
    templates = fake.requests[0]["body"]["workflow"]["spec"]["templates"]
    assert {t["container"]["image"] for t in templates if "container" in t} == {
        "registry.example/ml/small:2"}
    assert len(fake_docker.builds) == 1


@pytest.mark.parametrize("args, match", [
    (["--image", "repo/x:1", "--build", "repo/y:1"], "give --image"),
    (["--image", "repo/x:1", "--requirements", "r.txt"], "go with --build"),
])
def test_build_flags_misused_are_bad_usage(tmp_path, capsys, args, match):
    code, _, err = cli(capsys, "compile", _project(tmp_path / "p"), *args)
    assert code == 2 and match in err


def test_steps_from_two_folders_cannot_be_built_into_one_image(tmp_path, fake_docker):
    from mlflowlet.build import build_pipeline_image
    from mlflowlet.compilers import load_pipeline

    other = tmp_path / "other"
    other.mkdir()
    (other / "more.py").write_text("from mlflowlet import step\n\n@step\n"
                                   "def extra(context):\n    return 1\n")
    root = tmp_path / "p"
    _project(root)
    (root / "pipe.py").write_text((root / "pipe.py").read_text().replace(
        "from helpers import double",
        f"from helpers import double\nimport sys\nsys.path.insert(0, {str(other)!r})\n"
        "from more import extra").replace("    train(data", "    extra()\n    train(data"))
    pipe = load_pipeline(f"{root / 'pipe.py'}:small")
    with pytest.raises(ConfigError, match="imported from 2 folders"):
        build_pipeline_image(pipe, "repo/x:1")
