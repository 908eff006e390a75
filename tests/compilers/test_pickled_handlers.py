"""Steps defined in ``__main__``, a notebook or a function compile with their handler pickled."""

import json
import os
import subprocess
import sys
import textwrap

import compiler_pipelines as cp
import pytest
import yaml
from compiler_checks import argo_schema_errors, kfp_docs, kfp_strict_errors

from mlflowlet import _pickled
from mlflowlet.compilers import compile, compile_text
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers.check import check
from mlflowlet.context import Context
from mlflowlet.errors import CompileError, ConfigError
from mlflowlet.pipelines import pipeline, step
from mlflowlet.secrets import SecretsStore

IMAGE = "example.com/team/steps:1.0"
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _nested(captured=None):
    """A pipeline whose steps are defined in this function: not importable by module path."""

    @step(outputs=["data"])
    def make(rows: int = 3) -> str:
        return ",".join(str(i) for i in range(rows))

    factor = 3  # a closure value: it travels with the pickled handler

    @step
    def total(context, data, scale: int = 1) -> dict:
        numbers = [int(x) for x in data.get().decode().split(",")]
        context.log_result("count", len(numbers))
        if captured is not None:
            context.log_result("captured", len(str(captured)))
        return {"sum": factor * scale * sum(numbers)}

    @pipeline(image=IMAGE)
    def nested(rows: int = 4):
        m = make(rows=rows)
        total(data=m.outputs["data"], scale=2)

    return nested


def _handler_args(doc) -> list[tuple[str, str]]:
    """Every ``(--handler NAME, --handler-pickle PAYLOAD)`` pair in a compiled document."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            if "--handler" in value:
                i = value.index("--handler")
                pickled = value[i + 3] if value[i + 2 : i + 3] == ["--handler-pickle"] else ""
                found.append((value[i + 1], pickled))
            for v in value:
                walk(v)

    walk(doc)
    return sorted(found)


def test_nested_steps_compile_pickled_and_validate_strictly_on_both_targets(tmp_path):
    pipe = _nested()
    argo = compile(pipe, "argo")
    assert argo_schema_errors(argo) == []
    assert validate_argo(argo, pipe.dag) == []
    text = compile_text(pipe, "kfp")
    assert kfp_strict_errors(text, tmp_path) == []
    assert validate_kfp(kfp_docs(text)[0], pipe.dag) == []
    for pairs in (_handler_args(argo), _handler_args(kfp_docs(text))):
        assert [name.rsplit(".", 1)[-1] for name, _p in pairs] == ["make", "total"]
        assert all("<locals>" in name for name, _p in pairs)
        assert all(p.startswith(f"py{VERSION}:") for _n, p in pairs), pairs
    assert compile_text(pipe, "argo") == compile_text(pipe, "argo")  # deterministic


def test_an_importable_step_keeps_its_module_path_reference():
    pairs = _handler_args(compile(cp.diamond, "argo"))
    assert pairs and all(p == "" for _n, p in pairs)
    assert ("compiler_pipelines:make", "") in pairs


@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_check_runs_pickled_handlers_with_the_context_injected(tmp_path, target):
    report = check(_nested(), target, params={"rows": 5}, workdir=str(tmp_path / "check"))
    assert report.status == "Succeeded", report.summary()
    assert report.ok, report.summary()
    assert len(report.pods) == 2


def _entrypoint(args, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
    env["TMPDIR"] = str(tmp_path)
    return subprocess.run([sys.executable, "-m", "mlflowlet.entrypoint", *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_a_payload_recorded_under_another_python_fails_naming_both_versions(tmp_path):
    name, payload = _handler_args(compile(_nested(), "argo"))[0]
    assert name.endswith("make")
    out = tmp_path / "out"
    ok = _entrypoint(["--handler", name, "--handler-pickle", payload, "--param", "rows:int=3",
                      "--output", f"data={out}/"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert [p.read_text() for p in out.iterdir()] == ["0,1,2"]
    other = "3.9" if VERSION != "3.9" else "3.10"
    edited = payload.replace(f"py{VERSION}:", f"py{other}:", 1)
    bad = _entrypoint(["--handler", name, "--handler-pickle", edited], tmp_path)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert f"pickled under Python {other}, but this runs Python {VERSION}" in lines[0]
    assert "MLFLOWLET_RUN_JSON" not in bad.stdout


def test_decode_refuses_what_is_not_a_payload():
    with pytest.raises(ConfigError, match="not a pickled handler payload"):
        _pickled.decode_handler("steps:train", "m:f")
    with pytest.raises(ConfigError, match="is damaged"):
        _pickled.decode_handler(f"py{VERSION}:not base64!", "m:f")
    assert _pickled.decode_handler(_pickled.encode_handler(len, "x"), "m:f") is len


def test_a_handler_over_the_size_cap_is_refused_at_compile_time():
    blob = os.urandom(_pickled.MAX_PAYLOAD_CHARS)  # incompressible, over the cap in base64
    with pytest.raises(CompileError, match=r"step 'total': its pickled handler is \d+ "
                                           r"characters, over the 100000"):
        compile(_nested(captured=blob), "argo")
    small = os.urandom(_pickled.MAX_PAYLOAD_CHARS // 2)  # under it: compiles
    (_n, payload), = [p for p in _handler_args(compile(_nested(small), "kfp")) if "total" in p[0]]
    assert _pickled.MAX_PAYLOAD_CHARS // 2 < len(payload) <= _pickled.MAX_PAYLOAD_CHARS


def test_the_pickled_handlers_of_a_pipeline_are_capped_together(monkeypatch):
    payloads = [p for _n, p in _handler_args(compile(_nested(), "argo"))]
    monkeypatch.setattr(_pickled, "MAX_TOTAL_PAYLOAD_CHARS", sum(map(len, payloads)) - 1)
    with pytest.raises(CompileError, match="pickled handlers total"):
        compile(_nested(), "argo")
    monkeypatch.setattr(_pickled, "MAX_TOTAL_PAYLOAD_CHARS", sum(map(len, payloads)))
    assert compile(_nested(), "argo")["kind"] == "Workflow"


@pytest.mark.parametrize("captured", [Context.__new__(Context), SecretsStore()],
                         ids=["context", "secrets"])
def test_a_handler_capturing_a_context_or_secrets_is_never_pickled(captured):
    kind = type(captured).__name__
    with pytest.raises(CompileError, match=f"step 'total': its handler references a {kind}"):
        compile(_nested(captured=[captured]), "kfp")


SCRIPT = '''
import json, os
from mlflowlet.compilers import compile
from mlflowlet.compilers.check import check
from mlflowlet.pipelines import pipeline, step

@step(outputs=["data"])
def make(rows: int = 3) -> str:
    return ",".join(str(i) for i in range(rows))

@step
def total(context, data, scale: int = 1) -> dict:
    context.log_result("count", len(data.get().decode().split(",")))
    return {"sum": scale * sum(int(x) for x in data.get().decode().split(","))}

@pipeline(image="example.com/team/steps:1.0")
def numbers(rows: int = 4):
    m = make(rows=rows)
    total(data=m.outputs["data"], scale=2)

if __name__ == "__main__":
    out = {}
    for target in ("kfp", "argo"):
        compile(numbers, target=target, output=f"numbers.{target}.yaml")
        report = check(numbers, target, params={"rows": 5}, workdir=os.path.abspath(target))
        out[target] = [report.status, report.differences, len(report.pods)]
    print(json.dumps(out))
'''


def test_a_main_script_pipeline_compiles_and_checks_in_a_subprocess(tmp_path):
    (tmp_path / "pipe.py").write_text(textwrap.dedent(SCRIPT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
    env.update(TMPDIR=str(tmp_path), MLFLOWLET_DBPATH=str(tmp_path / "db"))
    proc = subprocess.run([sys.executable, "pipe.py"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"kfp": ["Succeeded", [], 2], "argo": ["Succeeded", [], 2]}
    argo = yaml.safe_load((tmp_path / "numbers.argo.yaml").read_text())
    assert argo_schema_errors(argo) == []
    kfp_text = (tmp_path / "numbers.kfp.yaml").read_text()
    assert kfp_strict_errors(kfp_text, tmp_path) == []
    for pairs in (_handler_args(argo), _handler_args(kfp_docs(kfp_text))):
        assert [n for n, _p in pairs] == ["__main__:make", "__main__:total"]
        assert all(p.startswith(f"py{VERSION}:") for _n, p in pairs)


@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_submit_posts_the_pickled_handlers(target):
    from test_submit import FakeServer, fake_argo, fake_kfp

    with FakeServer(fake_argo if target == "argo" else fake_kfp) as fake:
        _nested().submit(target, host=fake.url, namespace="ml", tracking=False)
    posted = [r["body"] for r in fake.requests if r["method"] == "POST"]
    pairs = _handler_args(posted)
    assert [name.rsplit(".", 1)[-1] for name, _p in pairs] == ["make", "total"]
    step = _pickled.decode_handler(pairs[0][1], pairs[0][0])  # the step itself, by value
    assert step.spec.name == "make" and step.fn(rows=2) == "0,1"


def _nested_sweep_and_map():
    """Nested steps under a hyper-parameter sweep, a fan-out and an exit handler."""
    from mlflowlet.pipelines import collect

    @step
    def train(lr: float = 0.1, depth: int = 1) -> dict:
        return {"accuracy": round(1 - abs(lr - 0.2) * depth, 3), "items": [1, 2, 3]}

    @step
    def square(x: int) -> dict:
        return {"sq": x * x}

    @step
    def add_all(values: list) -> dict:
        return {"total": sum(values)}

    @step
    def finally_(context, state: str = "") -> dict:
        return {"seen": state}

    @pipeline(image=IMAGE, on_exit=finally_)
    def sweep(depth: int = 2):
        tr = train.with_hyper_params({"lr": [0.1, 0.2, 0.3]}, selector="max.accuracy")(
            depth=depth)
        sq = square.map(items=tr.results["items"], item_param="x")
        add_all(values=collect(sq.results["sq"]))

    return sweep


@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_pickled_sweeps_maps_and_exit_handlers_match_the_local_run(tmp_path, target):
    pipe = _nested_sweep_and_map()
    names = [n.rsplit(".", 1)[-1] for n, p in _handler_args(compile(pipe, target)) if p]
    assert sorted(set(names)) == ["add_all", "finally_", "square", "train"]
    report = check(pipe, target, workdir=str(tmp_path / "check"))
    assert report.status == "Succeeded", report.summary()
    assert report.ok, report.summary()
