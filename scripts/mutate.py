"""Mutation testing of the core modules with mutmut: the score per module and every survivor.

``make mutate`` runs every module below; ``make mutate MODULES="naming graph"`` runs some. A
module may be narrowed to some of its functions with ``name:glob,glob`` (mutmut's mutant-name
globs on the function name), e.g. ``MODULES="hyper:expand_iterations,_expand_*"``.

Each module runs in a fresh copy of the checkout (``.mutate/<module>/``, ignored by git) with only
its own test files, so its score says how well *those* tests guard it. mutmut compiles every
mutant of a file into one module behind a trampoline and forks one pytest run per mutant,
running only the tests that reached the mutated function. ``PYTHONPATH`` points child processes
(subprocess runtimes, the CLI, the warm worker) at the mutated copy too, so a test that checks a
subprocess's outcome can kill a mutant; the functions a child runs count as reached by the test
that started it (see ``CHILD_SITECUSTOMIZE``).

Score = killed / all mutants, where killed counts mutants a test failed on or that hung
(mutmut's timeout). Survivors and mutants no selected test reaches ("no tests") are not killed
and are printed with their diff. Not part of ``make test``: the whole list takes about 30 minutes.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]

#: module -> (source file, test files, extra pytest args)
MODULES: dict[str, tuple[str, list[str], list[str]]] = {
    "hyper": (
        "mlflowlet/hyper.py",
        ["tests/test_hyper.py", "tests/test_hyper_generators.py", "tests/test_hyper_best.py"],
        [],
    ),
    "secrets": ("mlflowlet/secrets.py", ["tests/test_secrets.py"], []),
    "sqlbase": (
        "mlflowlet/db/_sqlbase.py",
        ["tests/db/test_sql_layer.py", "tests/db/test_sqlite.py", "tests/db/test_lists.py",
         "tests/db/test_http_contract.py"],
        ["-k", "not postgres"],  # one PostgreSQL cluster per forked mutant run is too slow
    ),
    "sqlwrite": (
        "mlflowlet/db/_sqlwrite.py",
        ["tests/db/test_sql_layer.py", "tests/db/test_sqlite.py", "tests/db/test_lists.py",
         "tests/db/test_http_contract.py"],
        ["-k", "not postgres"],
    ),
    "sql": (
        "mlflowlet/db/_sql.py",
        ["tests/db/test_sql_layer.py", "tests/db/test_sqlite.py", "tests/db/test_lists.py",
         "tests/db/test_http_contract.py"],
        ["-k", "not postgres"],
    ),
    "cache": (
        "mlflowlet/pipelines/cache.py",
        ["tests/pipelines/test_cache.py", "tests/pipelines/test_cache_lookup.py",
         "tests/pipelines/test_pipeline_resume.py"],
        [],
    ),
    "graph": (
        "mlflowlet/pipelines/graph.py",
        ["tests/pipelines/test_graph.py", "tests/pipelines/test_graph_views.py",
         "tests/pipelines/test_pipeline.py", "tests/pipelines/test_control_flow.py"],
        [],
    ),
    "executor": (
        "mlflowlet/pipelines/executor.py",
        ["tests/pipelines/test_executor.py", "tests/pipelines/test_pipeline.py",
         "tests/pipelines/test_control_flow.py", "tests/pipelines/test_pipeline_resume.py",
         "tests/pipelines/test_pipeline_lineage.py", "tests/pipelines/test_executor_records.py",
         "tests/pipelines/test_cache.py", "tests/pipelines/test_cache_lookup.py",
         "tests/pipelines/test_status_steps.py", "tests/pipelines/test_outputs.py",
         "tests/pipelines/test_exit_args.py", "tests/pipelines/test_item_fields.py",
         "tests/pipelines/test_subpipeline_map.py", "tests/pipelines/test_container_step.py",
         "tests/pipelines/test_workflow_context.py"],
        [],
    ),
    "naming": (
        "mlflowlet/compilers/_naming.py",
        ["tests/compilers/test_naming.py", "tests/compilers/test_argo.py",
         "tests/compilers/test_kfp.py"],
        [],
    ),
    "plan": (
        "mlflowlet/compilers/_plan.py",
        ["tests/compilers/test_argo.py", "tests/compilers/test_kfp.py",
         "tests/compilers/test_naming.py", "tests/compilers/test_bad_input.py",
         "tests/compilers/test_examples_compiled.py",
         "tests/compilers/test_item_fields_compiled.py",
         "tests/compilers/test_exit_args_compiled.py", "tests/compilers/test_outputs_compiled.py",
         "tests/compilers/test_status_compiled.py", "tests/compilers/test_images.py",
         "tests/compilers/test_plan_compiled.py"],
        ["-m", "not slow"],  # the compiled goldens and refusals; --check runs are too slow here
    ),
    "check": (
        "mlflowlet/compilers/check.py",
        ["tests/compilers/test_check.py", "tests/compilers/test_cli_compile.py"],
        [],
    ),
    "manager": (
        "mlflowlet/artifacts/manager.py",
        ["tests/artifacts/test_manager.py", "tests/artifacts/test_kinds.py",
         "tests/artifacts/test_dir_artifacts.py"],
        [],
    ),
    "govaluate": (
        "mlflowlet/_govaluate.py",
        ["tests/test_wire.py", "tests/compilers/test_argo.py", "tests/compilers/test_bad_input.py",
         "tests/compilers/test_final_status.py"],
        ["-m", "not slow"],
    ),
    "scheduler": (
        "mlflowlet/pipelines/_scheduler.py",
        ["tests/pipelines/test_inline_steps.py", "tests/pipelines/test_executor.py",
         "tests/pipelines/test_executor_records.py", "tests/pipelines/test_fast_paths.py",
         "tests/pipelines/test_control_flow.py", "tests/pipelines/test_subpipeline_map.py"],
        [],
    ),
    "forkserver": (
        "mlflowlet/runtimes/_forkserver.py",
        ["tests/runtimes/test_warm.py"],
        # mutmut's trampoline frames show in a child's traceback, which this test checks
        ["-k", "not test_iterations_fork_from_one_warm_worker_and_run_as_python_would"],
    ),
    "integrity": (
        "mlflowlet/datastore/_integrity.py",
        ["tests/datastore/test_integrity.py", "tests/datastore/test_hashing.py",
         "tests/artifacts/test_versions.py", "tests/artifacts/test_dir_artifacts.py"],
        [],
    ),
    "stepexec": (
        "mlflowlet/pipelines/_stepexec.py",
        ["tests/pipelines/test_executor.py", "tests/pipelines/test_pipeline.py",
         "tests/pipelines/test_step.py", "tests/pipelines/test_control_flow.py",
         "tests/pipelines/test_executor_records.py", "tests/pipelines/test_status_steps.py",
         "tests/pipelines/test_outputs.py", "tests/pipelines/test_inline_steps.py",
         "tests/pipelines/test_item_fields.py", "tests/pipelines/test_subpipeline_map.py",
         "tests/pipelines/test_workflow_context.py", "tests/pipelines/test_container_step.py"],
        [],
    ),
    "resume": (
        "mlflowlet/pipelines/_resume.py",
        ["tests/pipelines/test_pipeline_resume.py", "tests/pipelines/test_executor_records.py",
         "tests/pipelines/test_pipeline_cli.py"],
        [],
    ),
}

# A child process (subprocess runtime, CLI, warm worker) of a test imports the mutated copy too.
# While mutmut collects which tests reach which function ("stats"), mutmut's own recorder would
# look for pyproject.toml in the child's cwd; so a child appends its hits, with the test that
# started it (pytest's PYTEST_CURRENT_TEST, inherited), to the file CHILD_HITS names, and the
# plugin below hands them to mutmut. A function only a child runs is then tested by its mutants.
CHILD_HITS = "MUTATE_CHILD_HITS"
CHILD_SITECUSTOMIZE = """\
import os
if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    if os.environ.get("MUTATE_CHILD_HITS") and os.environ.get("PYTEST_CURRENT_TEST"):
        import mutmut.mutation.trampoline as _trampoline

        _HITS, _TEST = os.environ["MUTATE_CHILD_HITS"], os.environ["PYTEST_CURRENT_TEST"]

        def _hit(name, caller=None, _seen=set()):
            test = os.environ.get("PYTEST_CURRENT_TEST", _TEST).rsplit(" (", 1)[0]
            if (test, name) in _seen:
                return
            _seen.add((test, name))
            try:
                with open(_HITS, "a") as fh:
                    fh.write(test + "\\t" + name + "\\n")
            except OSError:
                pass

        _trampoline.record_trampoline_hit = _hit
    else:
        os.environ["MUTANT_UNDER_TEST"] = ""
"""
CHILD_PLUGIN = """\
import os


def _take():
    path = os.environ.get("MUTATE_CHILD_HITS")
    if os.environ.get("MUTANT_UNDER_TEST") != "stats" or not path or not os.path.exists(path):
        return
    from mutmut.state import state

    with open(path) as fh:
        lines = fh.read().splitlines()
    os.unlink(path)
    for line in lines:
        test, _, name = line.partition("\\t")
        state().tests_by_mangled_function_name[name].add(test.removeprefix("mutants/"))


def pytest_runtest_teardown(item, nextitem):
    _take()


def pytest_sessionfinish(session, exitstatus):
    _take()
"""

# mutmut started by ``-c``, not by its script: a test's multiprocessing "spawn" child re-imports
# the parent's ``__main__`` file, and mutmut's would look for pyproject.toml in the child's cwd.
MUTMUT_MAIN = [sys.executable, "-c", "import sys; from mutmut.__main__ import cli; "
               "sys.argv[0] = 'mutmut'; cli()"]

# A mutant that makes its tests run this many times longer than unmutated is killed (a hang).
# mutmut's default, 15, lets one scheduling loop that never ends hold a run for minutes.
TIMEOUT_MULTIPLIER = 5.0

EQUIVALENT_FILE = ROOT / "scripts" / "mutate-equivalent.toml"

KILLED = {"killed", "timeout", "segfault", "caught by type check"}
_IGNORE_ANYWHERE = shutil.ignore_patterns(
    ".venv", ".git", ".mutate", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache",
    ".mypy_cache", "*.egg-info", "mlflowlet.db*", ".bench",
)
# run outputs of the checkout and its examples; not the mlflowlet/artifacts package or its tests
_IGNORE_AT_TOP = {"build", "artifacts"}


def COPY_IGNORE(folder: str, names: list[str]) -> set[str]:  # noqa: N802 - shutil's ignore=
    """Names ``shutil.copytree`` leaves out of a module's copy of the checkout."""
    ignored = set(_IGNORE_ANYWHERE(folder, names))
    if Path(folder).resolve() in (ROOT, ROOT / "examples"):
        ignored |= _IGNORE_AT_TOP & set(names)
    return ignored


def _require_mutmut() -> None:
    try:
        import mutmut  # noqa: F401
    except ImportError:
        sys.exit("scripts/mutate.py: mutmut is not installed in this venv: "
                 "run `make mutate` (it installs mutmut>=3.8)")


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def prepare(name: str, work: Path) -> Path:
    """Copy the checkout into ``work/name`` and configure mutmut for one module."""
    source, tests, pytest_args = MODULES[name]
    # mutate_child_hits is written to .child/ by run(): it hands mutmut a child's hits (stats)
    plugin = ["-p", "no:cacheprovider", "-p", "mutate_child_hits"]
    scratch = work / name
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(ROOT, scratch, ignore=COPY_IGNORE)
    also = sorted(p.name for p in scratch.iterdir()
                  if p.name not in {"mlflowlet", "tests", "pyproject.toml"})
    with open(scratch / "pyproject.toml", "a") as conf:
        conf.write(
            "\n[tool.mutmut]\n"
            'source_paths = ["mlflowlet"]\n'
            f"only_mutate = {_toml_list([source])}\n"
            f"also_copy = {_toml_list(also)}\n"
            f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
            f"pytest_add_cli_args = {_toml_list([*plugin, *pytest_args])}\n"
            f"timeout_multiplier = {TIMEOUT_MULTIPLIER}\n"
        )
    return scratch


def _names(function: str) -> tuple[str, str]:
    """Return mutmut's mutant-name globs of a module function and of a method of any class."""
    return f"x_{function}__mutmut_*", f"x\u01c1*\u01c1{function}__mutmut_*"


def run(name: str, scratch: Path, functions: list[str], children: int) -> float:
    """Run mutmut for one module; its output goes to ``scratch/mutmut.log``."""
    source = MODULES[name][0]
    dotted = source.removesuffix(".py").replace("/", ".")
    globs = [g for fn in functions for g in (f"{dotted}.{n}" for n in _names(fn))]
    # made before mutmut starts: a PYTHONPATH entry missing at startup is cached as unimportable
    (scratch / "mutants").mkdir(exist_ok=True)
    child = scratch / ".child"
    child.mkdir(exist_ok=True)
    (child / "sitecustomize.py").write_text(CHILD_SITECUSTOMIZE)
    (child / "mutate_child_hits.py").write_text(CHILD_PLUGIN)
    env = dict(os.environ, PYTHONPATH=f"{child}{os.pathsep}{scratch / 'mutants'}",
               **{CHILD_HITS: str(child / "hits.tsv")})
    start = time.monotonic()
    with open(scratch / "mutmut.log", "w") as log:
        proc = subprocess.run([*MUTMUT_MAIN, "run", "--max-children", str(children), *globs],
                              cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = (scratch / "mutmut.log").read_text(errors="replace")[-3000:]
        print(f"{name}: mutmut failed ({proc.returncode}); end of {scratch}/mutmut.log:\n{tail}")
    return time.monotonic() - start


def _status(code: int | None) -> str:
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[code]


def _diff(scratch: Path, source: str, mutant: str) -> tuple[str, str]:
    """Return ``(the changed lines joined by " | ", the mutated line)`` of one mutant."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    cwd = os.getcwd()
    os.chdir(scratch)  # mutmut reads its mutants/ and pyproject.toml from the current directory
    try:
        shown = get_diff_for_mutant(mutant, path=source)
    except Exception as exc:  # a diff is a courtesy; the status is what counts
        shown = f"(no diff: {exc})"
    finally:
        os.chdir(cwd)
    changed = [line for line in shown.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    added = " ".join(line[1:].strip() for line in changed if line.startswith("+"))
    return " | ".join(line.strip() for line in changed) or shown.strip(), added


def _equivalent() -> dict[str, dict[str, str]]:
    """Return the surviving mutants judged equivalent (``scripts/mutate-equivalent.toml``)."""
    return tomllib.loads(EQUIVALENT_FILE.read_text()) if EQUIVALENT_FILE.exists() else {}


_SQL_WORDS = ("SELECT ", "INSERT ", "UPDATE ", "DELETE ", " WHERE ", " AND ", " ORDER BY ", " IN (")


def _sql_case(source: str, diff: str) -> dict[str, str] | None:
    """Return an equivalence entry for a mutant that only changes the letter case of SQL.

    SQL keywords and unquoted identifiers are case-insensitive in SQLite and PostgreSQL; a line
    holding a quoted SQL string is left to a reader.
    """
    removed = " ".join(p[1:].strip() for p in diff.split(" | ") if p.startswith("-"))
    added = " ".join(p[1:].strip() for p in diff.split(" | ") if p.startswith("+"))
    if not source.startswith("mlflowlet/db/") or removed == added:
        return None
    if removed.lower() != added.lower() or "'" in removed:  # a quoted SQL string keeps its case
        return None
    if not any(word in removed for word in _SQL_WORDS):
        return None
    return {"mutant": added, "why": "only the letter case of SQL changes (case-insensitive)"}


def report(name: str, scratch: Path, functions: list[str], seconds: float) -> dict:
    """Print the module's score and its surviving mutants; return the counts.

    A survivor listed in ``scripts/mutate-equivalent.toml`` whose mutated line is still the one
    recorded there is shown as equivalent, with the reason; a stale entry is ignored.
    """
    source = MODULES[name][0]
    meta = scratch / "mutants" / f"{source}.meta"
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    if functions:
        codes = {k: v for k, v in codes.items()
                 if any(fnmatch.fnmatch(k.rsplit(".", 1)[1], name)
                        for fn in functions for name in _names(fn))}
    statuses = {k: _status(c) for k, c in codes.items()}
    unchecked = sum(s == "not checked" for s in statuses.values())  # an interrupted run
    counted = {k: s for k, s in statuses.items() if s not in ("skipped", "not checked")}
    killed = sum(s in KILLED for s in counted.values())
    total = len(counted)
    lines, equivalent, known = [], 0, _equivalent()
    for key, status in counted.items():
        if status in KILLED:
            continue
        diff, added = _diff(scratch, source, key)
        entry = known.get(key) or _sql_case(source, diff)
        if entry and entry.get("mutant", "").strip() == added:
            equivalent += 1
            lines.append(f"  equivalent {key.rsplit('.', 1)[1]}: {entry['why']}")
        else:
            lines.append(f"  {status:10} {key.rsplit('.', 1)[1]}: {diff}")
    pct = 100.0 * killed / total if total else 0.0
    real = total - equivalent
    pct_real = 100.0 * killed / real if real else 0.0
    print(f"\n== {name} ({source}{': ' + ','.join(functions) if functions else ''}): "
          f"{killed}/{total} killed ({pct:.1f}%); {killed}/{real} ({pct_real:.1f}%) without "
          f"{equivalent} equivalent; {seconds:.0f} s")
    if unchecked:
        print(f"  {unchecked} more mutants were not checked (interrupted run?): the score counts "
              f"the {total} checked; see {scratch}/mutmut.log")
    print("\n".join(lines))
    return {"module": name, "killed": killed, "total": total, "percent": round(pct, 1),
            "equivalent": equivalent, "percent_real": round(pct_real, 1), "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    """Run (or with ``--report-only`` report) the modules named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help=f"some of: {' '.join(MODULES)} (default all)")
    parser.add_argument("--work", type=Path, default=ROOT / ".mutate")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--report-only", action="store_true",
                        help="print the last run's results without running mutmut")
    args = parser.parse_args(argv)
    _require_mutmut()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in a log
    wanted = [m for arg in args.modules for m in arg.split()] or list(MODULES)
    results = []
    for spec in wanted:
        name, _, funcs = spec.partition(":")
        if name not in MODULES:
            parser.error(f"unknown module {name!r}: choose from {', '.join(MODULES)}")
        functions = [f for f in funcs.split(",") if f]
        scratch = args.work / name
        seconds = 0.0
        if not args.report_only:
            seconds = run(name, prepare(name, args.work), functions, args.children)
        results.append(report(name, scratch, functions, seconds))
    print("\nmodule      killed/total  score   equivalent  score without them   time")
    for r in results:
        print(f"{r['module']:11} {r['killed']:>5}/{r['total']:<6}  {r['percent']:5.1f}%  "
              f"{r['equivalent']:>10}  {r['percent_real']:17.1f}%  {r['seconds']:5.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
