"""Run-DB fixtures on the session's throwaway PostgreSQL cluster (``postgres_cluster``, in
tests/conftest.py; the cluster itself is tests/_postgres.py).

Without the binaries (or psycopg) the PostgreSQL tests skip and say why (strict CI fails them).
``postgres_rundb`` empties one shared database before each test; ``postgres_url`` creates a new
database (for tests of schema creation).
"""

from __future__ import annotations

import pytest


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """The URL of a new, empty database in the session's cluster (no schema yet)."""
    return postgres_cluster.create_database()


@pytest.fixture(scope="session")
def _postgres_shared_url(postgres_cluster) -> str:
    from mlflowlet.db.postgres import PostgresRunDB

    url = postgres_cluster.create_database()
    PostgresRunDB(url).close()  # creates the schema once
    return url


@pytest.fixture
def postgres_rundb(_postgres_shared_url):
    """A ``PostgresRunDB`` on the session's run database, emptied first (cheaper than a new DB)."""
    import psycopg

    from mlflowlet.db.postgres import PostgresRunDB

    with psycopg.connect(_postgres_shared_url, autocommit=True) as conn:
        conn.execute("TRUNCATE runs, run_labels, artifacts, artifact_tags, metrics, logs, lineage"
                     " RESTART IDENTITY")
    db = PostgresRunDB(_postgres_shared_url)
    yield db
    db.close()
