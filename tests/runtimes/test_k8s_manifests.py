"""The Kubernetes manifests a run becomes, kept as golden YAML (like the compiled examples).

Each case dry-runs a runtime with a fixed run uid and compares every manifest with
``golden/<case>.yaml`` byte for byte; ``MLFLOWLET_REGENERATE=1`` rewrites the files (review the
diff). Every golden manifest is also validated: built-in kinds against the official OpenAPI schema
(kubernetes-validate, strict), the operators' resources against their CRD schemas
(``tests/schemas``, whole and strict), an MPIJob's pod templates also as ``v1/PodTemplate``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

pytest.importorskip("kubernetes_validate")
pytest.importorskip("jsonschema")

from _crd import validate  # noqa: E402

from mlflowlet import new_runner, new_task  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("MLFLOWLET_REGENERATE") == "1"  # read before the env is cleaned
UID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def fixed_uid(monkeypatch):
    monkeypatch.setattr("mlflowlet.runtimes.base.new_uid", lambda: UID)


def _job():
    rt = new_runner(command="job://ghcr.io/team/train:1.0#training.py", namespace="ml",
                    ttl_seconds_after_finished=600, backoff_limit=2)
    rt.with_limits(cpu="2", memory="4Gi", gpus=1).with_requests(cpu="500m", memory="1Gi")
    rt.set_env("MODE", "fast").with_node_selector(pool="gpu").with_secret_env("s3-creds")
    rt.with_tolerations({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"})
    rt.with_volume("/data", pvc="datasets", read_only=True).with_service_account("trainer")
    task = new_task(name="train", params={"p1": 3}).with_secrets("inline", {"TOKEN": "x-1"})
    rt.run(task, handler="train", dry_run=True, timeout=120)
    return rt.last_manifests


def _indexed_job():
    rt = new_runner(kind="job", image="repo/img:tag", command="training.py")
    task = new_task(name="sweep").with_hyper_params({"p1": [1, 2, 3, 4]}, selector="max.accuracy",
                                                    parallel=2)
    rt.run(task, handler="train", dry_run=True)
    return rt.last_manifests


def _script_job():
    rt = new_runner(kind="job", image="repo/img:tag", command="training.py --epochs 2")
    rt.run(new_task(name="script"), dry_run=True)
    return rt.last_manifests


def _mpijob():
    rt = new_runner(kind="mpijob", command="train_hvd.py", image="repo/hvd:1", replicas=2,
                    slots_per_worker=4, mpi_args=["-x", "NCCL_DEBUG=INFO"])
    rt.with_limits(cpu="8", memory="32Gi", gpus=4)
    task = new_task(name="hvd", params={"epochs": 2}).with_secrets("inline", {"KEY": "v"})
    rt.run(task, handler="train", dry_run=True, timeout=600)
    return rt.last_manifests


def _spark():
    rt = new_runner(command="spark://repo/spark-py:3.5#etl.py", executors=3, executor_cores=2,
                    executor_memory="4g", spark_conf={"spark.sql.shuffle.partitions": 64},
                    webhook=True)
    rt.with_limits(cpu="2", gpus=1).with_node_selector(pool="spark").with_volume("/d", pvc="d")
    rt.run(new_task(name="etl", params={"day": "2024-01-01"}), handler="etl", dry_run=True)
    return rt.last_manifests


def _spark_script():
    rt = new_runner(kind="spark", image="repo/spark-py:3.5", command="etl.py --day 2024-01-01")
    rt.with_node_selector(pool="spark").with_image_pull_secrets("regcred")
    task = new_task(name="etl").with_secrets("inline", {"PW": "x"})
    rt.run(task, dry_run=True)
    return rt.last_manifests


def _secure_job():
    rt = new_runner(kind="job", image="repo/img@sha256:" + "a" * 64, command="training.py")
    rt.with_security_context().with_image_pull_secrets("regcred")
    rt.run(new_task(name="secure"), handler="train", dry_run=True)
    return rt.last_manifests


CASES = {"job": _job, "secure_job": _secure_job, "spark_script": _spark_script,
         "indexed_job": _indexed_job, "script_job": _script_job, "mpijob": _mpijob,
         "spark_application": _spark}


@pytest.mark.parametrize("case", sorted(CASES))
def test_manifests_equal_their_golden_yaml(case):
    docs = CASES[case]()
    text = yaml.safe_dump_all(docs, sort_keys=False)
    path = GOLDEN / f"{case}.yaml"
    if REGENERATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path.name} is missing: run with MLFLOWLET_REGENERATE=1"
    assert text == path.read_text(), (
        f"the {case} manifests changed; rerun with MLFLOWLET_REGENERATE=1 if intended")
    for doc in yaml.safe_load_all(path.read_text()):
        validate(doc)


def test_builders_are_pure(monkeypatch):
    """The same inputs give the same manifests, whatever the clock or the environment."""
    first = yaml.safe_dump_all(_job(), sort_keys=False)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert yaml.safe_dump_all(_job(), sort_keys=False) == first
