"""Fixtures for the data store tests: a real S3 endpoint (SeaweedFS) and a clean AWS env.

``seaweedfs`` (tests/conftest.py) starts one ``weed server -s3`` per session on free ports;
``s3_bucket`` gives each test a new, empty bucket on it. The autouse ``_no_aws_env`` keeps
the machine's AWS variables and files out, so credentials come only from what a test gives.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _seaweedfs import SeaweedFS  # noqa: E402


@pytest.fixture(autouse=True)
def _no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Drop AWS_* / S3_* variables; point boto3's config files at nothing; no IMDS."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_", "S3_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("MLFLOWLET_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedFS) -> str:
    """A new, empty bucket on the SeaweedFS endpoint; its name."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    seaweedfs.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_secrets(seaweedfs: SeaweedFS) -> dict[str, str]:
    """Run secrets that reach the SeaweedFS endpoint."""
    return dict(seaweedfs.secrets)
