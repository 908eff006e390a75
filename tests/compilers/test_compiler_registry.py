"""The compiler registry: built-ins first, then the ``mlflowlet.compilers`` entry-point group."""

import compiler_pipelines as cp
import pytest

import mlflowlet
from mlflowlet import compilers
from mlflowlet.compilers import Compiler, compile, compile_text
from mlflowlet.errors import CompileError


class EchoCompiler(Compiler):
    target = "echo"

    def compile_docs(self, pipe, options):
        return [{"kind": "Echo", "steps": [n.name for n in pipe.dag.nodes],
                 "image": options.image}]


class _EntryPoint:
    def __init__(self, name, obj):
        self.name, self._obj = name, obj

    def load(self):
        return self._obj


def test_entry_point_targets_are_listed_and_used(monkeypatch):
    monkeypatch.setattr(compilers, "_entry_points",
                        lambda: {"echo": _EntryPoint("echo", EchoCompiler)})
    assert compilers.available() == ["argo", "echo", "kfp"]
    doc = compile(cp.diamond, "echo", image="repo/x:1")
    assert doc == {"kind": "Echo", "steps": ["make", "count", "total", "join"],
                   "image": "repo/x:1"}
    assert compile_text(cp.diamond, "echo").startswith("kind: Echo")


def test_an_entry_point_that_is_not_a_compiler_is_refused(monkeypatch):
    monkeypatch.setattr(compilers, "_entry_points",
                        lambda: {"bad": _EntryPoint("bad", lambda: object())})
    with pytest.raises(CompileError, match="not a mlflowlet Compiler"):
        compile(cp.diamond, "bad")


def test_compile_is_exported_lazily_from_mlflowlet():
    assert mlflowlet.compile is compilers.compile
    assert "compile" in mlflowlet.__all__
