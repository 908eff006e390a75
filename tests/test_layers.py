"""The layers of docs/architecture.md hold: the contracts, no cycle, seams up, sizes, typed seams.

The import graph here counts every import: at module level, inside functions and under
``TYPE_CHECKING`` (a cycle closed by a function-local import is still a cycle to a reader).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mlflowlet"
MAX_LINES = 500
# module -> why it is still over MAX_LINES (each entry must still be needed; remove it when not)
OVERSIZED = {
    "mlflowlet/runtimes/kubejob.py": "i20-cluster splits it into runtimes/k8s/ (#17, #20)",
}


# -- the import graph --------------------------------------------------------------------------


def _modules(package: Path) -> dict[str, Path]:
    """Return dotted module name -> file, for every module of ``package`` (a directory)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(package: Path) -> nx.DiGraph:
    """Every import between the modules of ``package``, wherever it is written."""
    modules = _modules(package)
    graph = nx.DiGraph()

    def known(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    for name, path in modules.items():
        graph.add_node(name)
        base = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                where = base
                for _ in range(node.level - 1):
                    where = where.rpartition(".")[0]
                full = (
                    (f"{where}.{node.module}" if node.module else where)
                    if node.level
                    else (node.module or "")
                )
                targets = [
                    f"{full}.{a.name}" if f"{full}.{a.name}" in modules else full
                    for a in node.names
                ]
            else:
                continue
            for target in map(known, targets):
                if target and target != name:
                    graph.add_edge(name, target)
    return graph


def _folder(module: str) -> str:
    """A subpackage's modules share its folder; each top-level module is a folder of its own."""
    return ".".join(module.split(".")[:2])


def cycles_leaving_a_folder(package: Path) -> list[list[str]]:
    """Return the import cycles (strongly connected modules) that span more than one folder."""
    components = [c for c in nx.strongly_connected_components(import_graph(package)) if len(c) > 1]
    return [sorted(c) for c in components if len({_folder(m) for m in c}) > 1]


def test_no_import_cycle_leaves_a_folder():
    assert cycles_leaving_a_folder(PACKAGE) == []


def test_the_cycle_finder_counts_function_local_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub import c\n")
    (pkg / "sub" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import x\n"
    )
    assert cycles_leaving_a_folder(pkg) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    (pkg / "sub" / "c.py").write_text("from .d import y\n")
    (pkg / "sub" / "d.py").write_text("def g():\n    from . import c\n")
    assert cycles_leaving_a_folder(pkg) == []  # inside one folder: allowed


# -- the declared contracts --------------------------------------------------------------------


def _layers() -> list[list[str]]:
    """The layers contract of pyproject.toml, bottom first, each a list of module tails."""
    from importlinter.api import read_configuration

    config = read_configuration(config_filename=str(ROOT / "pyproject.toml"))
    (layers,) = [c for c in config["contracts_options"] if c["id"] == "layers"]
    return [[t.strip() for t in re.split(r"[:|]", layer)] for layer in reversed(layers["layers"])]


def test_import_linter_contracts_are_kept():
    pytest.importorskip("importlinter", reason="import-linter is not installed (the dev extra)")
    # In a child: lint_imports configures logging with dictConfig, which disables every logger
    # this process already made (the run logs of later tests would lose their lines).
    code = "from importlinter.cli import lint_imports; import sys; sys.exit(lint_imports(" + (
        f"config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True, no_logo=True))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_module_has_a_layer():
    pytest.importorskip("importlinter", reason="import-linter is not installed (the dev extra)")
    placed = {tail for layer in _layers() for tail in layer}
    children = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    children |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert sorted(children - placed) == [], "add the module to a layer in pyproject.toml"
    assert sorted(placed - children) == [], "a layer names a module that does not exist"


def _layer_of(module: str, layers: list[list[str]]) -> int:
    tail = module.split(".")[1]
    (index,) = [i for i, layer in enumerate(layers) if tail in layer]
    return index


def test_each_seam_names_a_callable_above_every_caller():
    pytest.importorskip("importlinter", reason="import-linter is not installed (the dev extra)")
    from mlflowlet._seams import SEAMS, seam

    layers, callers = _layers(), {}
    for name, path in _modules(PACKAGE).items():
        for used in re.findall(r"""\bseam\(\s*["']([a-z_]+)["']""", path.read_text("utf-8")):
            callers.setdefault(used, set()).add(name)
    assert set(callers) == set(SEAMS), "a seam nobody calls, or a call of an unknown seam"
    for name, target in SEAMS.items():
        assert callable(seam(name)), target
        home = _layer_of(target.partition(":")[0], layers)
        for caller in callers[name]:
            assert home > _layer_of(caller, layers), f"seam {name!r}: {target} not above {caller}"


# -- one home per concept ----------------------------------------------------------------------


def test_only_the_process_module_registers_fork_hooks():
    where = [
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if "os.register_at_fork(" in path.read_text(encoding="utf-8")
    ]
    assert where == ["mlflowlet/_process.py"]


def test_modules_stay_under_the_size_budget():
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    over = {path for path, n in sizes.items() if n > MAX_LINES}
    assert over - set(OVERSIZED) == set(), {p: sizes[p] for p in over - set(OVERSIZED)}
    stale = {p for p in OVERSIZED if sizes.get(p, 0) <= MAX_LINES}
    assert not stale, f"no longer over {MAX_LINES} lines: drop them from OVERSIZED: {stale}"


def test_mypy_checks_every_layer_below_the_runtimes_strictly():
    pytest.importorskip("importlinter", reason="import-linter is not installed (the dev extra)")
    try:
        import tomllib
    except ImportError:  # Python 3.10: import-linter depends on tomli there
        import tomli as tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (strict,) = [o for o in config["tool"]["mypy"]["overrides"] if o.get("disallow_any_generics")]
    layers = _layers()
    below = [t for layer in layers[: _layer_of("mlflowlet.runtimes", layers)] for t in layer]
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    expected = {f"mlflowlet.{t}.*" if t in packages else f"mlflowlet.{t}" for t in below}
    assert set(strict["module"]) == expected
    flags = ("disallow_untyped_defs", "disallow_incomplete_defs", "warn_return_any")
    assert all(strict[flag] is True for flag in flags) and strict["implicit_reexport"] is False


def _exception_classes(tree: ast.Module) -> list[str]:
    """Return the public classes in ``tree`` deriving from a name ending Error/Exception/Warning."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            bases = [
                b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
            ]
            if any(re.search(r"(Error|Exception|Warning)$", b) for b in bases):
                out.append(node.name)
    return out


def test_public_errors_live_in_the_errors_module():
    defined = {
        f"{path.relative_to(ROOT)}:{name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "errors.py"
        for name in _exception_classes(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert defined == set(), "define public errors in mlflowlet/errors.py (re-export if needed)"


def test_the_error_finder_sees_an_error_class_and_skips_private_ones():
    tree = ast.parse(
        "class BadThing(errors.ConfigError): pass\n"
        "class _Retry(Exception): pass\n"
        "class Fine(Base): pass\n"
        "class Loud(UserWarning): pass\n"
    )
    assert _exception_classes(tree) == ["BadThing", "Loud"]
