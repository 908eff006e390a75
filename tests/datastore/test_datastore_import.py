"""Importing mlflowlet.datastore stays cheap: no heavy modules, a few milliseconds."""

from __future__ import annotations

import re
import subprocess
import sys

HEAVY = ("pandas", "pyarrow", "numpy", "boto3", "fsspec", "matplotlib", "urllib.request", "ssl")


def _run(code: str) -> tuple[str, str]:
    """Run ``code`` in a fresh interpreter; return (stdout, the -X importtime report)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    return out.stdout, out.stderr


def test_import_pulls_in_no_heavy_module():
    code = "import sys, mlflowlet.datastore; print(sorted(m for m in sys.modules))"
    loaded = set(eval(_run(code)[0]))
    assert not loaded & set(HEAVY)


def test_import_takes_under_5ms():
    _, out = _run("import mlflowlet.errors, mlflowlet.datastore")
    line = next(ln for ln in out.splitlines() if re.search(r"\| mlflowlet\.datastore$", ln))
    cumulative_us = int(line.split("|")[1])
    assert cumulative_us < 5000, line


def test_public_names_resolve_lazily():
    code = (
        "import sys, mlflowlet.datastore as d\n"
        "assert 'mlflowlet.datastore.dataitem' not in sys.modules\n"
        "d.DataItem, d.get_store\n"
        "assert 'mlflowlet.datastore.dataitem' in sys.modules\n"
        "assert 'mlflowlet.datastore.httpstore' not in sys.modules\n"
        "print(sorted(d.__all__))"
    )
    out, _ = _run(code)
    assert "['DataItem', 'DataStore', 'copy', 'get_dataitem', 'get_store', 'register_store']" in out
