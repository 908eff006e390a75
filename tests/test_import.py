"""``import mlflowlet`` stays light, and the public surface is small, sorted and importable."""

from __future__ import annotations

import json
import subprocess
import sys

import mlflowlet

HEAVY = ("kfp", "hera", "dask", "distributed", "kubernetes", "boto3", "botocore", "pandas",
         "pyarrow", "numpy", "fastapi", "starlette", "typer", "rich", "httpx", "matplotlib",
         "networkx", "pydantic", "yaml", "sqlite3", "cloudpickle")
PUBLIC = ("Context", "DataItem", "MLClientCtx", "NewRun", "NewTask", "RunObject", "RunTemplate",
          "get_or_create_ctx", "get_run_db", "new_function", "new_runner", "new_task")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _top(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_import_mlflowlet_loads_no_heavy_module():
    loaded = _top(_modules_after("import mlflowlet"))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_a_tracked_run_loads_no_integration_module():
    code = (
        "from mlflowlet import new_runner\n"
        "def h(context, p: int = 1):\n"
        "    context.log_result('r', p)\n"
        "    context.log_artifact('a.txt', body=b'x')\n"
        "new_runner().run(handler=h)\n"
    )
    integrations = ("kfp", "hera", "dask", "distributed", "kubernetes", "boto3", "pandas",
                    "fastapi", "typer", "httpx", "matplotlib", "networkx")
    loaded = _top(_modules_after(code))
    assert not loaded & set(integrations), sorted(loaded & set(integrations))


def test_all_is_sorted_and_complete():
    assert mlflowlet.__all__ == sorted(mlflowlet.__all__)
    assert set(PUBLIC) <= set(mlflowlet.__all__)


def test_every_public_name_imports():
    for name in mlflowlet.__all__:
        assert getattr(mlflowlet, name) is not None, name
    assert dir(mlflowlet) == mlflowlet.__all__


def test_aliases():
    assert mlflowlet.NewRun is mlflowlet.new_task and mlflowlet.NewTask is mlflowlet.new_task
    assert mlflowlet.new_function is mlflowlet.new_runner
    assert mlflowlet.MLClientCtx is mlflowlet.Context


def test_documented_subpackage_names_import():
    from mlflowlet.artifacts import (
        Artifact,
        ChartArtifact,
        DatasetArtifact,
        ModelArtifact,
        PlotArtifact,
        TableArtifact,
    )
    from mlflowlet.secrets import SecretsStore

    for kind in (ChartArtifact, DatasetArtifact, ModelArtifact, PlotArtifact, TableArtifact):
        assert issubclass(kind, Artifact), kind
    assert SecretsStore().mask("x") == "x"


def test_an_unknown_attribute_is_an_attribute_error():
    try:
        mlflowlet.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_a_first_tracked_run_loads_no_module_it_does_not_need():
    """Issue 18: no pydantic plugin scan (importlib.metadata), no tempfile/shutil (dir uploads)."""
    code = (
        "from mlflowlet import new_runner\n"
        "def h(context, p: int = 1):\n"
        "    context.log_result('r', p)\n"
        "    context.log_artifact('a.txt', body=b'x')\n"
        "assert new_runner().run(handler=h).state == 'completed'\n"
    )
    unneeded = {"importlib.metadata", "pydantic.plugin._loader", "tempfile", "shutil"}
    loaded = _modules_after(code)
    assert not loaded & unneeded, sorted(loaded & unneeded)
