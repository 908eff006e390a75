"""Immutable artifact versions on S3 (SeaweedFS): own locations, ETag checks, verify, gc."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from blake3 import blake3

from mlflowlet import get_run_db
from mlflowlet.artifacts import collect_garbage, verify_artifacts
from mlflowlet.datastore import get_dataitem
from mlflowlet.errors import ArtifactIntegrityError

WRITER = r"""
import sys
from mlflowlet import new_runner, new_task

name, root, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

def handler(context, i: int):
    context.log_artifact("model", body=f"{name}-{i}".encode(), format="bin")
    context.log_artifact("model", body=f"{name}-{i} again".encode(), format="bin")

runner = new_runner()
for i in range(count):
    runner.run(new_task(name=name, params={"i": i}, artifact_path=root), handler=handler)
"""


def blake3_of(data: bytes) -> str:
    """The hash a new version records: BLAKE3, named."""
    return "blake3:" + blake3(data).hexdigest()


@pytest.fixture
def logged(s3_bucket, s3_secrets, dbdir):
    """Two processes each log ``model`` twice per run, 4 runs, to one s3:// artifact_path."""
    env = {**os.environ, **s3_secrets, "MLFLOWLET_DBPATH": str(dbdir)}
    root = f"s3://{s3_bucket}/runs"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, name, root, "4"], env=env)
        for name in ("a", "b")
    ]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    return root


def _read(art, secrets, **kw):
    return get_dataitem(art["uri"], artifact=art, secrets=secrets, **kw).get()


def test_every_version_reads_back_its_own_bytes(logged, s3_secrets):
    versions = get_run_db().list_artifacts("model", tag="*")
    assert len(versions) == 16 and len({v["uri"] for v in versions}) == 16
    runs = {r["metadata"]["uid"]: r for r in get_run_db().list_runs()}
    for art in versions:
        run = runs[art["producer"]["uid"]]
        name, i = run["metadata"]["name"], run["spec"]["params"]["i"]
        data = _read(art, s3_secrets, verify=True)
        assert data in (f"{name}-{i}".encode(), f"{name}-{i} again".encode())
        assert blake3_of(data) == art["hash"]
        assert art["uri"].startswith(f"{logged}/{art['producer']['uid']}/model")
        assert art["etag"]
    latest = {r["status"]["artifacts"][0]["uri"] for r in runs.values()}
    assert all(uri.endswith("/model.v2.bin") for uri in latest)  # the second of each run


def test_a_replaced_object_raises_and_verify_sees_same_etag_tampering(
    logged, seaweedfs, s3_bucket, s3_secrets
):
    art = get_run_db().list_artifacts("model", tag="*")[0]
    key = art["uri"].split("/", 3)[3]
    seaweedfs.client().put_object(Bucket=s3_bucket, Key=key, Body=b"z" * art["size"])
    with pytest.raises(ArtifactIntegrityError) as err:
        _read(art, s3_secrets)
    assert (err.value.key, err.value.location) == ("model", art["uri"])
    assert "ETag" in err.value.reason
    other = dict(art, etag=None)  # a record without an ETag: only the hash can tell
    assert _read(other, s3_secrets) == b"z" * art["size"]
    with pytest.raises(ArtifactIntegrityError, match="blake3"):
        _read(other, s3_secrets, verify=True)
    report = verify_artifacts(secrets=s3_secrets)
    assert report.checked == 16 and len(report.problems) == 1 and art["uri"] in report.problems[0]


def test_gc_deletes_the_objects_of_deleted_runs(logged, seaweedfs, s3_bucket, s3_secrets):
    db = get_run_db()
    db.del_runs(name="a")
    report = collect_garbage(secrets=s3_secrets)
    assert len(report.files) == 8 and len(report.versions) == 8
    keys = [o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert len(keys) == 8
    assert {art["uri"].split("/", 3)[3] for art in db.list_artifacts("model", tag="*")} == set(keys)
