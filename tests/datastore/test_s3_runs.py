"""Runs that read inputs from and write artifacts to S3 (SeaweedFS), credentials from secrets."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
from blake3 import blake3

from mlflowlet import get_run_db, new_runner, new_task
from mlflowlet.datastore import get_store


def blake3_of(data: bytes) -> str:
    """The hash a new version records: BLAKE3, named."""
    return "blake3:" + blake3(data).hexdigest()

MiB = 1 << 20


def _db_bytes(dbdir) -> bytes:
    return b"".join(p.read_bytes() for p in dbdir.rglob("*") if p.is_file())


def test_seed_command_line_reads_s3_input_with_credentials_only_in_the_secrets_file(
    seaweedfs, s3_bucket, examples_dir, dbdir
):
    seaweedfs.client().put_object(
        Bucket=s3_bucket, Key="infile.txt", Body=b"first line from s3\nsecond line\n"
    )
    (examples_dir / "secrets.txt").write_text(
        "# only here: not in the environment, not in the URL\n"
        "ACCESS_KEY=dummy-access-key-123\n"
        f"AWS_ACCESS_KEY_ID={seaweedfs.access_key}\n"
        f"AWS_SECRET_ACCESS_KEY={seaweedfs.secret_key}\n"
        f"S3_ENDPOINT_URL={seaweedfs.endpoint}\n"
    )
    assert not [name for name in os.environ if name.startswith("AWS_ACCESS")]
    cmd = [
        sys.executable, "-m", "mlflowlet", "run", "--name", "train", "-p", "p2=5",
        "-i", f"infile.txt=s3://{s3_bucket}/infile.txt", "-s", "file=secrets.txt",
        "--artifact-path", f"s3://{s3_bucket}/artifacts", "training.py",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=examples_dir, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr + done.stdout
    db = get_run_db(str(dbdir)).connect()
    (run,) = db.list_runs("train")
    assert run["status"]["state"] == "completed"
    assert run["spec"]["inputs"] == {"infile.txt": f"s3://{s3_bucket}/infile.txt"}
    log = db.get_log(run["metadata"]["uid"], run["metadata"]["project"]).decode()
    assert "first line from s3" in log
    uris = {a["key"]: a["uri"] for a in run["status"]["artifacts"]}
    uid = run["metadata"]["uid"]
    assert uris["model.txt"] == f"s3://{s3_bucket}/artifacts/{uid}/model.txt"  # the run's own dir
    assert seaweedfs.client().get_object(Bucket=s3_bucket, Key=f"artifacts/{uid}/model.txt")[
        "Body"
    ].read() == b"abc is 123"
    assert seaweedfs.secret_key.encode() not in _db_bytes(dbdir)


def _train(context, p1: int = 1):
    context.log_result("accuracy", p1 * 10)
    context.log_artifact("model.txt", body=f"model {p1}".encode())
    path = os.path.join(os.getcwd(), f"weights-{p1}.bin")
    with open(path, "wb") as f:
        f.write(bytes([p1]) * (6 * MiB))  # above the 5 MiB part size below: a multipart upload
    context.log_artifact("weights", local_path=path)


def test_artifact_path_on_s3_for_a_whole_hyper_parameter_sweep(
    seaweedfs, s3_bucket, s3_secrets, dbdir, monkeypatch
):
    monkeypatch.setenv("MLFLOWLET_S3_PART_SIZE", "5MB")
    task = (
        new_task(name="sweep", artifact_path=f"s3://{s3_bucket}/sweep")
        .with_secrets("inline", s3_secrets)
        .with_hyper_params({"p1": [1, 2, 3]}, selector="max.accuracy")
    )
    run = new_runner().run(task, handler=_train)
    assert run.state == "completed" and run.results["best_iteration"] == 3
    client = seaweedfs.client()
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"])
    names = [
        "1/model.txt", "1/weights-1.bin", "2/model.txt", "2/weights-2.bin", "3/model.txt",
        "3/weights-3.bin", "iteration_results.csv",
    ]  # fmt: skip
    assert keys == [f"sweep/{run.uid}/{name}" for name in names]
    db = get_run_db(str(dbdir)).connect()
    arts = db.list_artifacts("", tag="*")
    weights = [a for a in arts if a["key"] == "weights" and a["iteration"]]
    assert len(weights) == 3
    (link,) = [a for a in arts if a["key"] == "weights" and not a["iteration"]]  # the parent's
    assert link["link_iteration"] == 3 and link["uri"].endswith("/3/weights-3.bin")
    for art in weights:
        body = get_store(art["uri"], s3_secrets).get(art["uri"])
        assert art["hash"] == blake3_of(body) and art["size"] == 6 * MiB
        head = client.head_object(Bucket=s3_bucket, Key=art["uri"].split("/", 3)[3])
        assert head["ETag"].strip('"').endswith("-2")  # two parts
    key = f"sweep/{run.uid}/iteration_results.csv"
    table = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert b"accuracy" in table
    assert seaweedfs.secret_key.encode() not in _db_bytes(dbdir)


def test_log_artifact_to_s3_hashes_while_uploading(seaweedfs, s3_bucket, s3_secrets, monkeypatch):
    from mlflowlet.datastore import _streams

    def no_second_pass(path):
        raise AssertionError("the file was read twice: hash_file after/before the upload")

    monkeypatch.setattr(_streams, "hash_file", no_second_pass)
    data = os.urandom(9 * MiB)
    with open("big.bin", "wb") as f:
        f.write(data)

    def handler(context):
        context.log_artifact("big", local_path="big.bin")

    task = new_task(artifact_path=f"s3://{s3_bucket}/run").with_secrets("inline", s3_secrets)
    run = new_runner().run(task, handler=handler)
    (art,) = run.status.artifacts
    assert art["uri"] == f"s3://{s3_bucket}/run/{run.uid}/big.bin"
    assert (art["hash"], art["size"]) == (blake3_of(data), len(data))
    key = f"run/{run.uid}/big.bin"
    body = seaweedfs.client().get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert body == data


def test_large_body_warns_and_goes_up_in_parts(seaweedfs, s3_bucket, s3_secrets, monkeypatch):
    from mlflowlet.artifacts import ArtifactManager, manager

    monkeypatch.setattr(manager, "BODY_WARN_BYTES", 1 * MiB)
    monkeypatch.setenv("MLFLOWLET_S3_PART_SIZE", "5MB")
    body = os.urandom(11 * MiB)
    am = ArtifactManager(f"s3://{s3_bucket}/bodies")
    with pytest.warns(UserWarning, match=r"artifact 'blob': a body of 11 MiB .* local_path="):
        art = am.log("blob", body=body, secrets=s3_secrets)
    assert art.hash == blake3_of(body)
    head = seaweedfs.client().head_object(Bucket=s3_bucket, Key="bodies/blob")
    assert head["ContentLength"] == len(body) and head["ETag"].strip('"').endswith("-3")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        am.log("small", body=b"x" * 1000, secrets=s3_secrets)  # under the threshold: silent


def test_run_artifact_get_uses_the_run_secrets_kept_in_memory(seaweedfs, s3_bucket, s3_secrets,
                                                             dbdir):
    def handler(context):
        context.log_artifact("model.txt", body=b"weights from s3")

    task = new_task(artifact_path=f"s3://{s3_bucket}/mem").with_secrets("inline", s3_secrets)
    run = new_runner().run(task, handler=handler)
    assert run.artifact("model.txt").get() == b"weights from s3"  # no AWS_* variables anywhere
    assert run.refresh().artifact("model.txt").get() == b"weights from s3"
    assert seaweedfs.secret_key not in run.to_json()
    assert seaweedfs.secret_key.encode() not in _db_bytes(dbdir)
    stored = get_run_db(str(dbdir)).read_run(run.uid, project=run.metadata.project)
    from mlflowlet.model import RunObject

    with pytest.raises(Exception, match="credential|Credentials|Access|403|denied"):
        RunObject.model_validate(stored).artifact("model.txt").get()  # the record alone: none
