"""The compiler registry: built-ins first, then the ``mlflowlet.compilers`` entry-point group
(a real distribution installed on ``sys.path`` for the test, not a patched table)."""

import sys

import compiler_pipelines as cp
import pytest

import mlflowlet
from mlflowlet import compilers
from mlflowlet.compilers import compile, compile_text
from mlflowlet.errors import CompileError, UnknownBackendError

ECHO_PLUGIN = """\
from mlflowlet.compilers import Compiler


class EchoCompiler(Compiler):
    target = "echo"

    def compile_docs(self, pipe, options):
        return [{"kind": "Echo", "steps": [n.name for n in pipe.dag.nodes],
                 "image": options.image}]


def not_a_compiler():
    return object()
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A real installed distribution on sys.path whose entry points importlib.metadata finds."""
    site = tmp_path / "site"
    info = site / "mlflowlet_echo-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "mlflowlet_echo.py").write_text(ECHO_PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlflowlet-echo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[mlflowlet.compilers]\n"
        "echo = mlflowlet_echo:EchoCompiler\n"
        "bad = mlflowlet_echo:not_a_compiler\n"
    )
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("mlflowlet_echo", None)


def test_entry_point_targets_are_listed_and_used(plugin):
    assert compilers.available() == ["argo", "bad", "echo", "kfp"]
    doc = compile(cp.diamond, "echo", image="repo/x:1")
    assert doc == {"kind": "Echo", "steps": ["make", "count", "total", "join"],
                   "image": "repo/x:1"}
    assert compile_text(cp.diamond, "echo").startswith("kind: Echo")


def test_an_entry_point_that_is_not_a_compiler_is_refused(plugin):
    with pytest.raises(CompileError, match="'bad' of mlflowlet.compilers gave object, not a"):
        compile(cp.diamond, "bad")


def test_without_the_plugin_its_target_is_unknown():
    assert compilers.available() == ["argo", "kfp"]
    with pytest.raises(UnknownBackendError, match="echo"):
        compile(cp.diamond, "echo")


def test_compile_is_exported_lazily_from_mlflowlet():
    assert mlflowlet.compile is compilers.compile
    assert "compile" in mlflowlet.__all__
