"""A sweep's parent links its best iteration's artifact versions; ``latest`` points at them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlflowlet import get_run_db, new_runner, new_task
from mlflowlet.datastore import get_dataitem

LOSSES = {1: 0.5, 2: 0.2, 3: 0.2, 4: 0.9}  # iterations 2 and 3 tie on the lowest loss


def train(context, p: int):
    context.log_result("loss", LOSSES[p])
    context.log_result("acc", 1 - LOSSES[p])
    context.log_artifact("model", body=f"model {p}".encode(), format="txt", tag="candidate")


def _sweep(selector: str, parallel: int = 1, project: str = "sw"):
    task = new_task(name="sweep", project=project, artifact_path="out")
    task.with_hyper_params({"p": [1, 2, 3, 4]}, selector=selector or None, parallel=parallel)
    return new_runner().run(task, handler=train)


def test_latest_store_url_and_the_parent_give_the_best_iteration():
    run = _sweep("min.loss")
    assert run.results["best_iteration"] == 2
    db = get_run_db()
    latest = db.read_artifact("model", project="sw")
    assert (latest["iteration"], latest["link_iteration"]) == (0, 2)
    assert get_dataitem("store://artifacts/sw/model").get() == b"model 2"
    assert get_dataitem("store://artifacts/sw/model:candidate").get() == b"model 2"  # its tag too
    assert run.artifact("model").get() == b"model 2"
    recorded = db.read_run(run.uid, project="sw")
    (link,) = [a for a in recorded["status"]["artifacts"] if a["key"] == "model"]
    assert link["link_iteration"] == 2
    best = db.list_artifacts("model", project="sw", tag="*", iter=2)
    assert [a["uri"] for a in best] == [latest["uri"]]  # a link, not a copy
    assert latest["uri"].endswith(f"/{run.uid}/2/model.txt")


def test_every_iteration_stays_listable():
    _sweep("min.loss")
    db = get_run_db()
    versions = db.list_artifacts("model", project="sw", tag="*")
    assert sorted(a["iteration"] for a in versions) == [0, 1, 2, 3, 4]
    for it in (1, 2, 3, 4):
        (art,) = db.list_artifacts("model", project="sw", tag="*", iter=it)
        assert get_dataitem(art["uri"], artifact=art).get() == f"model {it}".encode()


def test_cli_get_artifact_shows_the_best_version(dbdir):
    _sweep("max.acc")
    out = subprocess.run(
        [sys.executable, "-m", "mlflowlet", "get", "artifact", "model", "--project", "sw",
         "-o", "json"], capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    art = json.loads(out.stdout)
    assert art["link_iteration"] == 2
    assert open(art["uri"], "rb").read() == b"model 2"
    listed = subprocess.run(
        [sys.executable, "-m", "mlflowlet", "get", "artifacts", "--project", "sw", "--tag", "*",
         "--iter", "4", "-o", "json"], capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert [a["iteration"] for a in json.loads(listed.stdout)] == [4]


@pytest.mark.parametrize("selector", ["min.loss", "max.acc"])
@pytest.mark.parametrize("parallel", [1, 3])
def test_ties_pick_the_lowest_iteration(selector, parallel):
    run = _sweep(selector, parallel=parallel)
    assert run.results["best_iteration"] == 2
    assert run.artifact("model").get() == b"model 2"
    assert get_dataitem("store://artifacts/sw/model").get() == b"model 2"


def test_without_a_selector_latest_is_the_last_recorded_iteration():
    run = _sweep("")
    assert "best_iteration" not in run.results
    db = get_run_db()
    latest = db.read_artifact("model", project="sw")
    assert latest["link_iteration"] is None and latest["iteration"] == 4  # the last recorded
    assert [a["key"] for a in run.status.artifacts] == ["iteration_results"]  # no links
