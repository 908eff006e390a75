"""Property-based run of every documented operation (schemathesis): no input gives a 500."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

TOKEN = "fuzz-token"


@pytest.fixture
def api_schema(tmp_path_factory):
    from mlflowlet.db.sqlite import SQLiteRunDB
    from mlflowlet.server.app import create_app

    root = tmp_path_factory.mktemp("fuzz")
    (root / "artifacts").mkdir()
    (root / "artifacts" / "f.txt").write_text("hello")
    app = create_app(SQLiteRunDB(str(root / "fuzz.db")), token=TOKEN,
                     artifact_root=str(root / "artifacts"), ui=False)
    return schemathesis.openapi.from_asgi("/openapi.json", app,
                                          headers={"authorization": f"Bearer {TOKEN}"})


def test_no_input_makes_the_server_fail(api_schema):
    from hypothesis import given

    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers={"authorization": f"Bearer {TOKEN}"},
                                   checks=[not_a_server_error])

        try:
            check()
        except Exception as exc:
            raise AssertionError(f"{operation.label}: {exc}") from exc
