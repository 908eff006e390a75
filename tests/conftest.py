"""Shared fixtures: every test runs in a clean environment of its own.

The autouse fixture chdirs into ``tmp_path``, points ``MLFLOWLET_DBPATH`` at a fresh directory,
drops every other ``MLFLOWLET_*`` variable, and resets per-process state (cached DB connections,
the active run's ``ContextVar`` and the capture sink) before and after each test. The real
services several directories share start once per session: ``postgres_cluster`` and ``seaweedfs``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from fake_builders import bare_path, fake_docker  # noqa: F401 - FAKE image builders, as fixtures

sys.path.insert(0, str(Path(__file__).parent))
import _strict  # noqa: E402

STRICT = _strict.strict()  # read before the autouse fixture drops MLFLOWLET_* variables

EXAMPLES = Path(__file__).parents[1] / "examples"


def _reset_process_state() -> None:
    from mlflowlet import _process

    _process.reset()  # cached DB connections, the active run and its capture sink


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test in ``tmp_path`` with its own run DB directory and no other settings."""
    for name in list(os.environ):
        if name.startswith("MLFLOWLET_"):
            monkeypatch.delenv(name)
    dbdir = tmp_path / "rundb"
    dbdir.mkdir()
    monkeypatch.setenv("MLFLOWLET_DBPATH", str(dbdir))
    monkeypatch.chdir(tmp_path)
    _reset_process_state()
    yield dbdir
    _reset_process_state()


@pytest.fixture
def dbdir(clean_env: Path) -> Path:
    """The directory ``MLFLOWLET_DBPATH`` points at for this test."""
    return clean_env


@pytest.fixture(scope="session")
def postgres_cluster():
    """A running throwaway PostgreSQL cluster for the session (tests/_postgres.py).

    Skips when the binaries or psycopg are missing (strict CI fails such a skip).
    """
    pytest.importorskip(
        "psycopg", reason="psycopg is not installed: pip install 'mlflowlet[postgres]'"
    )
    from _postgres import PostgresCluster, _bindir

    bindir = _bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, postgres) not found: install Debian's "
            "'postgresql' package (scripts/test-deps.sh does it for make test)"
        )
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory):
    """A running SeaweedFS S3 endpoint for the session (tests/datastore/_seaweedfs.py)."""
    pytest.importorskip("boto3")
    sys.path.insert(0, str(Path(__file__).parent / "datastore"))
    from _seaweedfs import SeaweedFS

    server = SeaweedFS(str(tmp_path_factory.mktemp("seaweedfs")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def examples_dir(tmp_path: Path) -> Path:
    """A private copy of the repository's ``examples/`` directory."""
    target = tmp_path / "examples"
    shutil.copytree(
        EXAMPLES, target, ignore=shutil.ignore_patterns("mlflowlet.db*", "artifacts", "__pycache__")
    )
    return target


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to regenerate golden files in strict CI: that would make them tautologies.

    Hypothesis (under schemathesis) keeps its example database in a temporary directory, not in
    a ``.hypothesis/`` of the checkout: tests write only under temporary directories.
    """
    if STRICT and os.environ.get("MLFLOWLET_REGENERATE"):
        raise pytest.UsageError(
            "MLFLOWLET_REGENERATE is set under MLFLOWLET_TEST_STRICT: golden files would be "
            "rewritten instead of compared; unset it in CI"
        )
    if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = tempfile.mkdtemp(prefix="mlflowlet-hyp-")
        config.add_cleanup(
            lambda: shutil.rmtree(os.environ.pop("HYPOTHESIS_STORAGE_DIRECTORY"), True)
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Under strict CI, a skip whose reason is not in ``tests/_strict.py`` fails the test."""
    outcome = yield
    report = outcome.get_result()
    if not (STRICT and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _strict.skip_reason(report.longrepr)
    if not _strict.allowed(reason):
        report.outcome = "failed"
        report.longrepr = (
            f"strict CI (MLFLOWLET_TEST_STRICT=1): skipped for a reason not allowed in "
            f"tests/_strict.py: {reason}"
        )


def _disallowed_skips(config: pytest.Config) -> list:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    return [r for r in skipped if not _strict.allowed(_strict.skip_reason(r.longrepr))]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under strict CI, a module skipped at collection for a disallowed reason fails the run."""
    if STRICT and _disallowed_skips(session.config):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(
    terminalreporter: object, exitstatus: int, config: pytest.Config
) -> None:
    """Name every skip that strict CI refuses."""
    for report in _disallowed_skips(config) if STRICT else []:
        reason = _strict.skip_reason(report.longrepr)
        terminalreporter.write_line(  # type: ignore[attr-defined]
            f"strict CI: {report.nodeid} skipped for a reason not allowed in "
            f"tests/_strict.py: {reason}"
        )
