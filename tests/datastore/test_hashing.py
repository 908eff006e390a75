"""New versions record a named BLAKE3 digest; sha256 on request; old records still verify."""

from __future__ import annotations

import hashlib
import os

import pytest
from blake3 import blake3

from mlflowlet import get_run_db, new_runner, new_task
from mlflowlet.artifacts import verify_artifacts
from mlflowlet.datastore import _hashing, _streams, get_dataitem
from mlflowlet.errors import ArtifactIntegrityError, ConfigError

BODY = b"model bytes\n" * 100


def _log(tmp_path, **fields):
    src = tmp_path / "src.bin"
    src.write_bytes(BODY)

    def handler(context):
        context.log_artifact("body", body=BODY, format="bin")
        context.log_artifact("file", local_path=str(src))

    run = new_runner().run(new_task(artifact_path=str(tmp_path / "out")), handler=handler)
    return run, {a["key"]: a for a in run.status.artifacts}


def test_new_versions_record_blake3_with_its_name(tmp_path):
    _, arts = _log(tmp_path)
    for art in arts.values():
        assert art["hash"] == "blake3:" + blake3(BODY).hexdigest()


def test_sha256_on_request_is_recorded_and_verified_as_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOWLET_HASH_ALGO", "sha256")
    run, arts = _log(tmp_path)
    for art in arts.values():
        assert art["hash"] == "sha256:" + hashlib.sha256(BODY).hexdigest()
    assert run.artifact("file").get(verify=True) == BODY
    with open(arts["file"]["uri"], "r+b") as f:
        f.write(b"M")  # same size
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        run.artifact("file").get(verify=True)


def test_hash_algo_setting_names_the_choices(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOWLET_HASH_ALGO", "md5")

    def handler(context):
        context.log_artifact("x", body=b"x", format="bin")

    run = new_runner().run(
        new_task(artifact_path=str(tmp_path / "out")), handler=handler, raise_on_error=False
    )
    assert run.state == "error"
    assert "MLFLOWLET_HASH_ALGO='md5'" in run.error and "blake3, sha256" in run.error
    with pytest.raises(ConfigError, match="hash_algo='md5'"):
        _hashing.check_algo("md5")


def test_a_bare_sha256_record_from_before_algorithms_were_named_still_verifies(tmp_path):
    _, arts = _log(tmp_path)
    old = dict(arts["file"], hash=hashlib.sha256(BODY).hexdigest())  # how #11 recorded it
    assert get_dataitem(old["uri"], artifact=old, verify=True).get() == BODY
    with open(old["uri"], "r+b") as f:
        f.write(b"M")
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        get_dataitem(old["uri"], artifact=old, verify=True).get()
    with pytest.raises(ArtifactIntegrityError, match="blake3"):  # the new record's own algorithm
        get_dataitem(arts["file"]["uri"], artifact=arts["file"], verify=True).get()


def test_a_record_naming_an_unknown_algorithm_cannot_be_verified(tmp_path):
    _, arts = _log(tmp_path)
    odd = dict(arts["body"], hash="md5:" + hashlib.md5(BODY).hexdigest())
    with pytest.raises(ArtifactIntegrityError, match="hash algorithm 'md5'"):
        get_dataitem(odd["uri"], artifact=odd, verify=True).get()


def test_doctor_verifies_each_version_with_its_own_algorithm(tmp_path, monkeypatch):
    _log(tmp_path)
    monkeypatch.setenv("MLFLOWLET_HASH_ALGO", "sha256")
    (tmp_path / "src.bin").write_bytes(BODY)
    _log(tmp_path)  # a second run recorded with sha256
    db = get_run_db()
    algos = sorted(_hashing.split(a["hash"])[0] for a in db.list_artifacts(tag="*"))
    assert algos == ["blake3", "blake3", "sha256", "sha256"]
    report = verify_artifacts(db)
    assert report.checked == 4 and not report.problems
    sha_file = next(
        a for a in db.list_artifacts(tag="*") if a["key"] == "file" and "sha256" in a["hash"]
    )
    with open(sha_file["uri"], "r+b") as f:
        f.write(b"M")
    (problem,) = verify_artifacts(db).problems
    assert sha_file["uri"] in problem and "sha256" in problem


def test_a_large_copy_hashed_with_threads_matches_single_threaded_blake3(tmp_path):
    size = _hashing.THREADED_BYTES * 2 + 12345  # big enough for the thread pool, odd tail
    data = os.urandom(size)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    copy = str(tmp_path / "copy.bin")
    path, digest, got = _streams.copy_hashed_to(str(src), copy, True, "blake3")
    assert (digest, got) == (blake3(data).hexdigest(), size)
    assert open(path, "rb").read() == data
    assert _streams.hash_file(str(src), "blake3") == (blake3(data).hexdigest(), size)
