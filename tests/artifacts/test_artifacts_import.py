"""Importing mlflowlet.artifacts stays cheap: no heavy modules (its time is a figure of
``make bench``, benchmarks/bench_core.py, not a timed test)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "pyarrow", "numpy", "matplotlib", "boto3", "fsspec", "urllib.request")


def _run(code: str) -> tuple[str, str]:
    """Run ``code`` in a fresh interpreter; return (stdout, the -X importtime report)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    return out.stdout, out.stderr


def test_import_pulls_in_no_heavy_module():
    code = (
        "import sys, mlflowlet.artifacts as a\n"
        "a.ArtifactManager, a.DatasetArtifact, a.PlotArtifact, a.ChartArtifact\n"
        "print(sorted(sys.modules))"
    )
    loaded = set(eval(_run(code)[0]))
    assert "mlflowlet.artifacts.manager" in loaded
    assert not loaded & set(HEAVY)


def test_all_is_sorted_and_complete():
    import mlflowlet.artifacts as artifacts

    assert artifacts.__all__ == sorted(artifacts.__all__)
    assert set(artifacts.__all__) == {
        "Artifact", "ArtifactManager", "ChartArtifact", "DatasetArtifact", "ModelArtifact",
        "PlotArtifact", "TableArtifact", "artifact_from_dict", "collect_garbage", "validate_key",
        "verify_artifacts",
    }  # fmt: skip
    for name in artifacts.__all__:
        assert getattr(artifacts, name).__doc__
