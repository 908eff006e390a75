"""A bounded schemathesis run (every check) against the real server: 0 server errors, 0 failures.

The server runs on uvicorn in this process; schemathesis runs as its CLI (``st run``) with a fixed
seed so a failure reproduces. ``--max-examples 25`` keeps it well under three minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
TOKEN = "fuzz-token"
ST = Path(sys.executable).with_name("st")


def test_every_operation_passes_every_schemathesis_check(tmp_path):
    from mlflowlet.db.sqlite import SQLiteRunDB
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.app import create_app

    if not ST.exists():
        pytest.skip(f"schemathesis is not installed ({ST} missing): pip install 'mlflowlet[test]'")
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "f.txt").write_text("hello")
    app = create_app(SQLiteRunDB(str(tmp_path / "fuzz.db")), token=TOKEN,
                     artifact_root=str(tmp_path / "artifacts"), ui=False)
    report = tmp_path / "report.json"
    # A key of at most 200 characters may still pass 200 UTF-8 bytes, which JSON Schema cannot
    # say (it counts characters): that one rejection of schema-valid data is documented as a 400.
    (tmp_path / "schemathesis.toml").write_text(
        '[[operations]]\ninclude-name = "PUT /api/v1/artifacts/{key}"\n'
        '[operations.checks.positive_data_acceptance]\nexpected-statuses = ["2xx", "400"]\n'
    )
    with ThreadedServer(app) as server:
        done = subprocess.run(
            [str(ST), "run", f"{server.url}/openapi.json", "--checks", "all",
             "--max-examples", "25", "--seed", "1515", "--workers", "1",
             "--header", f"Authorization: Bearer {TOKEN}", "--report", "json",
             "--report-json-path", str(report), "--output-truncate", "true"],
            capture_output=True, text=True, timeout=180, cwd=tmp_path,
        )
    tail = done.stdout[-6000:]
    assert done.returncode == 0, tail
    summary = json.loads(report.read_text())
    assert summary["complete"] and summary["failures"] == [] and summary["errors"] == []
    assert summary["operations"]["tested"] == summary["operations"]["total"] >= 24
    assert summary["test_cases"]["generated"] > 1000
    assert summary["test_cases"]["with_failures"] == 0
    assert all(p["status"] == "success" for n, p in summary["phases"].items() if n != "examples")


def test_the_openapi_document_lists_every_status_a_route_returns(tmp_path):
    from mlflowlet.db.sqlite import SQLiteRunDB
    from mlflowlet.server.app import create_app

    app = create_app(SQLiteRunDB(str(tmp_path / "d.db")), token="", ui=False)
    doc = app.openapi()
    ops = {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()}
    for (method, path), op in ops.items():
        codes = set(op["responses"])
        if path.startswith("/api/v1/") and path != "/api/v1/version":
            assert {"400", "401", "422", "500"} <= codes, (method, path, codes)
        if op.get("requestBody") and path.startswith("/api/v1/"):
            assert {"408", "413"} <= codes, (method, path)
    assert "404" in ops[("GET", "/api/v1/runs/{uid}")]["responses"]
    assert "409" in ops[("PATCH", "/api/v1/runs/{uid}")]["responses"]
    assert "409" in ops[("DELETE", "/api/v1/runs")]["responses"]
    assert {"206", "416"} <= set(ops[("GET", "/api/v1/files/{path}")]["responses"])
    schemas = doc["components"]["schemas"]
    meta = schemas["StrictRunMetadata"]["properties"]
    assert meta["iteration"]["type"] == "integer" and meta["iteration"]["maximum"] == 2**31 - 1
    assert schemas["StrictRunStatus"]["properties"]["state"]["enum"][0] == "created"
    listing = {p["name"]: p for p in ops[("GET", "/api/v1/runs")]["parameters"]}
    assert listing["limit"]["schema"]["default"] == 100
    assert listing["label"]["schema"]["maxItems"] == 100
