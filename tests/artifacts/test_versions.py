"""Immutable artifact versions: no write replaces a recorded version's bytes, whatever the path."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import pytest
from blake3 import blake3

from mlflowlet import DataItem, get_run_db, new_runner, new_task, pipeline, step
from mlflowlet.datastore import _streams, get_dataitem

WRITER = r"""
import sys
from mlflowlet import new_runner, new_task

name, root, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

def handler(context, i: int):
    context.log_artifact("model", body=f"{name}-{i}-".encode() * (i + 1), format="bin")

runner = new_runner()
for i in range(count):
    runner.run(new_task(name=name, params={"i": i}, artifact_path=root), handler=handler)
"""


def blake3_of(data: bytes) -> str:
    """The hash a new version records: BLAKE3, named."""
    return "blake3:" + blake3(data).hexdigest()


def _reads_back_its_own_bytes(art: dict) -> bytes:
    data = get_dataitem(art["uri"], artifact=art, verify=True).get()
    assert blake3_of(data) == art["hash"]
    return data


def test_two_processes_logging_one_key_to_one_artifact_path_keep_every_version(tmp_path, dbdir):
    root, count = str(tmp_path / "shared"), 15
    env = {**os.environ, "MLFLOWLET_DBPATH": str(dbdir)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, name, root, str(count)], env=env)
        for name in ("a", "b")
    ]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    db = get_run_db()
    runs = db.list_runs()
    assert len(runs) == 2 * count
    for run in runs:
        (art,) = run["status"]["artifacts"]
        name, i = run["metadata"]["name"], run["spec"]["params"]["i"]
        assert _reads_back_its_own_bytes(art) == f"{name}-{i}-".encode() * (i + 1)
        # each run writes in a directory of its own under the shared artifact_path
        assert art["uri"] == os.path.join(root, run["metadata"]["uid"], "model.bin")
        assert art["owned"] is True
    versions = db.list_artifacts("model", tag="*")
    assert len(versions) == 2 * count
    assert len({v["uri"] for v in versions}) == 2 * count


def _claim_many(path: str, tag: str, count: int) -> list[str]:
    out = []
    for i in range(count):
        landed, _, _ = _streams.write_new(path, [f"{tag}{i}".encode()], exclusive=True)
        out.append(landed)
    return out


def test_exclusive_publish_gives_concurrent_processes_a_name_each(tmp_path):
    path = str(tmp_path / "d" / "model.pkl")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        got = pool.starmap(_claim_many, [(path, "a", 40), (path, "b", 40)])
    names = [p for chunk in got for p in chunk]
    assert len(set(names)) == 80
    for tag, chunk in zip("ab", got, strict=True):
        for i, landed in enumerate(chunk):
            assert open(landed, "rb").read() == f"{tag}{i}".encode()
    assert sorted(os.listdir(tmp_path / "d"))[:3] == ["model.pkl", "model.v10.pkl", "model.v11.pkl"]


def test_versioned_names_keep_the_extension_last():
    assert _streams.versioned_name("/a/model.pkl", 1) == "/a/model.pkl"
    assert _streams.versioned_name("/a/model.pkl", 2) == "/a/model.v2.pkl"
    assert _streams.versioned_name("/a/data", 3) == "/a/data.v3"
    assert _streams.versioned_name("/a/.env", 2) == "/a/.env.v2"


def test_a_key_logged_twice_in_one_run_keeps_both_versions(tmp_path):
    def handler(context):
        context.log_artifact("model", body=b"first", format="txt")
        context.log_artifact("model", body=b"second!", format="txt")

    run = new_runner().run(new_task(artifact_path=str(tmp_path / "out")), handler=handler)
    versions = get_run_db().list_artifacts("model", tag="*")
    assert sorted(_reads_back_its_own_bytes(v) for v in versions) == [b"first", b"second!"]
    assert sorted(os.path.basename(v["uri"]) for v in versions) == ["model.txt", "model.v2.txt"]
    assert run.artifact("model").get() == b"second!"  # the run lists its latest version
    assert get_dataitem("store://artifacts/default/model").get() == b"second!"


def test_an_absolute_target_path_gets_the_run_directory(tmp_path):
    target = str(tmp_path / "models" / "m.pkl")

    def handler(context, n: int):
        context.log_artifact("m", body=str(n).encode(), target_path=target)
        context.log_artifact("m", body=str(n + 10).encode(), target_path=target)

    runs = [new_runner().run(new_task(params={"n": n}), handler=handler) for n in (1, 2)]
    for run, n in zip(runs, (1, 2), strict=True):
        versions = get_run_db().list_artifacts("m", tag="*", tree=run.uid)
        by_uri = {v["uri"]: _reads_back_its_own_bytes(v) for v in versions}
        run_dir = tmp_path / "models" / run.uid
        assert by_uri == {str(run_dir / "m.pkl"): str(n).encode(),
                          str(run_dir / "m.v2.pkl"): str(n + 10).encode()}  # fmt: skip


def test_a_file_written_into_the_run_directory_is_recorded_in_place_once(tmp_path):
    def handler(context):
        path = os.path.join(context.artifact_path, "weights.bin")
        os.makedirs(context.artifact_path, exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"w1")
        first = context.log_artifact("weights", local_path=path)
        with open(path, "wb") as f:  # the handler rewrites its own file: a new version
            f.write(b"w2")
        second = context.log_artifact("weights", local_path=path)
        return [first.uri, second.uri]

    run = new_runner().run(new_task(), handler=handler)
    first, second = run.results["return"]
    assert first != second and open(second, "rb").read() == b"w2"


@step(outputs=["data"])
def produce(context, text: str):
    context.log_artifact("data", body=text, format="txt")


@step
def consume(context, data: DataItem) -> str:
    return data.get().decode()


@pipeline(name="same-output-key")
def same_key():
    a, b = produce(text="from a"), produce(text="from b")
    consume(data=a.outputs["data"])
    consume(data=b.outputs["data"])


def test_two_steps_with_one_output_key_feed_their_own_consumers(tmp_path):
    run = same_key.run(artifact_path=str(tmp_path / "pipe"))
    assert run.state == "completed", run.error
    steps = get_run_db().list_runs(labels=f"pipeline_uid={run.uid}")
    got = sorted(
        r["status"]["results"]["return"]
        for r in steps
        if r["metadata"]["name"].startswith("consume")
    )
    assert got == ["from a", "from b"]
    uris = [a["uri"] for r in steps for a in r["status"]["artifacts"]]
    assert len(uris) == len(set(uris)) == 2


def test_a_consumer_reading_a_tampered_input_fails_naming_it(tmp_path):
    @step
    def tamper(context, data: DataItem) -> str:
        with open(data.url, "r+b") as f:
            f.write(b"FROM")
        return data.get().decode()

    @pipeline(name="tampering")
    def tampering():
        tamper(data=produce(text="from a").outputs["data"])

    run = tampering.run(artifact_path=str(tmp_path / "pipe"))
    assert run.state == "error"
    steps = get_run_db().list_runs(labels=f"pipeline_uid={run.uid}")
    (failed,) = [r for r in steps if r["metadata"]["name"] == "tamper"]
    assert "ArtifactIntegrityError" in failed["status"]["error"]
    assert "artifact 'data'" in failed["status"]["error"]


@pytest.mark.parametrize("upload", [True, False])
def test_versions_record_their_stamp_and_ownership(tmp_path, upload):
    src = tmp_path / "f.bin"
    src.write_bytes(b"payload")

    def handler(context):
        context.log_artifact("f", local_path=str(src), upload=upload)

    (art,) = new_runner().run(new_task(), handler=handler).status.artifacts
    assert art["owned"] is upload  # a file recorded where it is is never removed with the run
    assert art["mtime_ns"] == os.stat(art["uri"]).st_mtime_ns
    assert (art["uri"] == str(src)) is not upload
