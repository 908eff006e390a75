"""The corpus of ported published pipelines (``examples/ports``): run, compile, validate, check.

For every port: the local run computes what the original computes (``port_cases``); it compiles
to KFP and Argo; the YAML passes strict validation (KFP ``PipelineSpec`` strict parse and
``load_component_from_file``; Argo's two official schemas, strict) and the semantic checks,
and equals the golden file beside the port (``MLFLOWLET_REGENERATE=1`` rewrites them); and the
compiled run (``--check``) agrees with the local run *and* computes what the original computes.
A phase that fails because of an open #12 defect is a strict xfail naming it; an original
mlflowlet cannot express yet is skipped, naming the missing construct (#13).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from compiler_checks import argo_schema_errors, kfp_docs, kfp_strict_errors
from port_cases import PORTS, Port
from port_outcome import from_local, from_report

from mlflowlet import get_run_db
from mlflowlet.compilers import compile_text
from mlflowlet.compilers._validate import validate_argo, validate_kfp
from mlflowlet.compilers.check import check
from mlflowlet.errors import CompileError

PORTS_DIR = Path(__file__).parents[2] / "examples" / "ports"
IMAGE = "ghcr.io/mlflowlet/examples:0.1.0"
REGENERATE = os.environ.get("MLFLOWLET_REGENERATE") == "1"  # read before the env is cleaned
_SDK = re.compile(r"^sdkVersion: .*$", re.M)  # kfp stamps its own version into the IR
TARGETS = ("argo", "kfp")
BY_NAME = {p.name: p for p in PORTS}


def _load(port: Port) -> Any:
    """Import ``ports.<name>.pipeline`` (as an image with ``examples/`` on its path would)."""
    if "ports" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "ports", PORTS_DIR / "__init__.py", submodule_search_locations=[str(PORTS_DIR)]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules["ports"] = package
        spec.loader.exec_module(package)
    from mlflowlet.pipelines import Pipeline

    module = importlib.import_module(f"ports.{port.name}.pipeline")
    pipes = [v for v in vars(module).values() if isinstance(v, Pipeline)]
    bodies = {  # sub-pipelines mapped inside another (a loop body) are not the port's pipeline
        loop.name.rsplit("-loop-", 1)[0]
        for pipe in pipes
        for node in pipe.dag.nodes
        if node.map is not None and node.map.loop is not None
        for loop in node.map.loop.chain()
    }
    bodies |= {p.dag.exit_pipeline.pipe.name for p in pipes if p.dag.exit_pipeline is not None}
    pipes = [p for p in pipes if p.name not in bodies]
    assert len(pipes) == 1, f"{port.name}: one @pipeline per port (besides loop and exit bodies)"
    return pipes[0]


def _cases(phase: str, targets: tuple[str, ...] = ("",)) -> list[Any]:
    out = []
    for port in PORTS:
        for target in targets:
            key = f"{phase}-{target}" if target else phase
            marks: list[Any] = []
            if port.missing:
                marks.append(pytest.mark.skip(reason=f"not expressible yet: {port.missing}"))
            elif key in port.xfail:
                marks.append(pytest.mark.xfail(strict=True, reason=port.xfail[key]))
            ident = f"{port.name}-{target}" if target else port.name
            out.append(pytest.param(port, *([target] if target else []), marks=marks, id=ident))
    return out


def _params(port: Port, params: dict[str, Any], tmp: Path) -> dict[str, Any]:
    for name, text in port.files.items():
        (tmp / name).write_text(text)
    return {k: v.format(tmp=tmp) if isinstance(v, str) else v for k, v in params.items()}


def _mapped(pipe: Any) -> set[str]:
    return {n.name for n in pipe.dag.nodes if n.map is not None}


def _collected(pipe: Any) -> set[str]:
    from mlflowlet.pipelines import Collected

    return {k for k, v in pipe.dag.outputs.items() if isinstance(v, Collected)}


@pytest.mark.parametrize("port", _cases("local"))
def test_port_computes_what_the_original_computes(port, tmp_path):
    pipe = _load(port)
    for i, given in enumerate(port.runs):
        params = _params(port, given, tmp_path)
        db = get_run_db(str(tmp_path / f"db{i}"), cached=False)
        try:
            run = pipe.run(params, db=db, artifact_path=str(tmp_path / f"art{i}"))
            port.expect(from_local(run, db, _mapped(pipe)), params)
        finally:
            db.close()


def _golden(path: Path, text: str, expect_golden: bool) -> str | None:
    if REGENERATE:
        path.write_text(text)
    if not path.exists():
        assert not expect_golden, f"{path} is missing: run with MLFLOWLET_REGENERATE=1"
        return None
    return path.read_text()


@pytest.mark.parametrize(("port", "target"), _cases("compile", TARGETS))
def test_port_compiles_validates_and_matches_its_golden_file(port, target, tmp_path):
    pipe = _load(port)
    if target in port.refused:  # a construct the target cannot carry: refused, never bent
        with pytest.raises(CompileError, match=port.refused[target]):
            compile_text(pipe, target, image=IMAGE)
        assert not (PORTS_DIR / port.name / f"pipeline.{target}.yaml").exists()
        return
    text = compile_text(pipe, target, image=IMAGE)
    if target == "argo":  # each Argo release's output against its own schema (the memoize
        doc = yaml.safe_load(text)  # cache reference differs: v3 names a ConfigMap key)
        assert argo_schema_errors(doc, ("4.1.2",)) == []
        v3 = yaml.safe_load(compile_text(pipe, target, image=IMAGE, argo_version="3"))
        assert argo_schema_errors(v3, ("3.7.18",)) == []
        assert validate_argo(doc, pipe.dag) == []
    else:
        assert kfp_strict_errors(text, tmp_path) == []
        assert validate_kfp(kfp_docs(text)[0], pipe.dag) == []
    # a port whose target is still xfail has no golden yet: compiling is what must flip
    expect_golden = f"compile-{target}" not in port.xfail
    golden = _golden(PORTS_DIR / port.name / f"pipeline.{target}.yaml", text, expect_golden)
    if golden is not None:
        assert _SDK.sub("", text) == _SDK.sub("", golden), (
            f"compiled {target} YAML of {port.name} changed; rerun with MLFLOWLET_REGENERATE=1"
        )


@pytest.mark.slow
@pytest.mark.parametrize(("port", "target"), _cases("check", TARGETS))
def test_port_compiled_run_matches_the_local_run(port, target, tmp_path):
    pipe = _load(port)
    params = _params(port, port.runs[port.check], tmp_path)
    workdir = tmp_path / "check"
    if target in port.refused:
        with pytest.raises(CompileError, match=port.refused[target]):
            check(pipe, target, image=IMAGE, params=params, workdir=str(workdir))
        return
    report = check(pipe, target, image=IMAGE, params=params, workdir=str(workdir),
                   ignore_results=port.ignore)
    assert report.ok, report.summary()
    db = get_run_db(str(workdir / "rundb"), cached=False)  # where the pods recorded their runs
    try:
        port.expect(from_report(report, _mapped(pipe), db, _collected(pipe)), params)
    finally:
        db.close()


def test_kfp_caching_port_reuses_its_cached_result(tmp_path):
    pipe = _load(BY_NAME["kfp_caching"])
    db = get_run_db(str(tmp_path / "db"), cached=False)
    try:
        runs = [pipe.run({"seconds": s}, db=db, artifact_path=str(tmp_path / "art"))
                for s in (1, 1, 0)]
    finally:
        db.close()
    first, again, other = (r.steps["do_work_op"] for r in runs)
    assert again.status.results == first.status.results  # the same finish time: not rerun
    assert runs[1].run.status.steps["do_work_op"]["cached_from"] == first.uid
    assert again.logs() == "" and "Working: 0." in first.logs()
    assert other.status.results != first.status.results  # other params: it ran again
    assert not runs[2].run.status.steps["do_work_op"].get("cached_from")


@pytest.mark.parametrize("target", TARGETS)
def test_ports_compile_the_originals_retries_and_caching(target):
    retry = compile_text(_load(BY_NAME["kfp_retry"]), target, image=IMAGE)
    if target == "argo":  # set_retry(10) / set_retry(5): 10 and 5 retries after the first try
        assert re.findall(r"retryStrategy:\n\s+limit: '(\d+)'", retry) == ["10", "5"]
    else:
        assert re.findall(r"maxRetryCount: (\d+)", retry) == ["10", "5"]
        caching = compile_text(_load(BY_NAME["kfp_caching"]), target, image=IMAGE)
        assert "cachingOptions:\n          enableCache: true" in caching


def test_every_port_folder_has_a_case_and_a_migration_line():
    folders = sorted(p.name for p in PORTS_DIR.iterdir() if (p / "__init__.py").exists()
                     or (p / "PORT.md").exists())
    assert folders == sorted(BY_NAME)
    guide = (PORTS_DIR / "README.md").read_text()
    for port in PORTS:
        assert f"[{port.name}]({port.name}/)" in guide, f"{port.name} has no line in README.md"
        if port.missing:
            assert (PORTS_DIR / port.name / "PORT.md").exists()
        else:
            assert (PORTS_DIR / port.name / "pipeline.py").exists()


def test_argo_memoize_port_reuses_for_ten_seconds_only(tmp_path):
    from datetime import datetime, timedelta

    pipe = _load(BY_NAME["argo_memoize"])
    db = get_run_db(str(tmp_path / "db"), cached=False)
    try:
        first, again = (pipe.run({}, db=db) for _ in range(2))
        assert again.run.status.steps["whalesay"]["cached_from"] == first.steps["whalesay"].uid
        for data in db.list_runs():  # 11 seconds pass
            stamp = datetime.fromisoformat(data["status"]["end_time"]) - timedelta(seconds=11)
            data["status"]["end_time"] = stamp.isoformat()
            data["metadata"].get("annotations", {}).pop("cached_at", None)
            db.store_run(data, data["metadata"]["uid"], data["metadata"]["project"], 0)
        late = pipe.run({}, db=db)
    finally:
        db.close()
    assert not late.run.status.steps["whalesay"].get("cached_from")
    doc = yaml.safe_load((PORTS_DIR / "argo_memoize" / "pipeline.argo.yaml").read_text())
    memo = next(t for t in doc["spec"]["templates"] if t["name"] == "whalesay")["memoize"]
    assert memo["maxAge"] == "10s"
