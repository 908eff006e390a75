"""A compiled pipeline run by a real Argo Server / KFP, recorded end to end (#20).

Runs only when ``ARGO_SERVER`` (Argo) or ``KFP_HOST`` (KFP) is set; no engine can run on the
development machines. It then needs what the README's "Running a compiled pipeline on a real
cluster" checklist lists, named by:

* ``MLFLOWLET_TEST_PIPELINE_IMAGE``: an image holding mlflowlet and this folder's
  ``compiler_pipelines.py`` (``mlflowlet compile tests/compilers/compiler_pipelines.py:diamond
  --build <registry>/diamond:1 --push`` builds one);
* ``MLFLOWLET_TEST_DBPATH``: an ``mlflowlet server`` URL reachable from the pods and from here
  (its API token in ``MLFLOWLET_API_TOKEN`` here and, for a server URL, in the Secret named
  by ``MLFLOWLET_TEST_TOKEN_SECRET``, ``name:key``, in the namespace);
* ``MLFLOWLET_TEST_ARTIFACT_PATH``: a shared artifact store the pods write to (``s3://...``);
* ``ARGO_TOKEN`` / ``MLFLOWLET_TEST_NS`` (optional): the Argo token and namespace.

With the engine's variable set and one of them missing the test fails, naming it.
"""

from __future__ import annotations

import os
import uuid

import compiler_pipelines as cp
import pytest

NEEDED = ("MLFLOWLET_TEST_PIPELINE_IMAGE", "MLFLOWLET_TEST_DBPATH", "MLFLOWLET_TEST_ARTIFACT_PATH")
ENV = {name: os.environ.get(name, "") for name in (  # read before the env is cleaned
    *NEEDED, "MLFLOWLET_TEST_TOKEN_SECRET", "MLFLOWLET_API_TOKEN", "MLFLOWLET_TEST_NS",
    "ARGO_SERVER", "ARGO_TOKEN", "KFP_HOST")}
HOSTS = {"argo": ENV["ARGO_SERVER"], "kfp": ENV["KFP_HOST"]}


@pytest.mark.integration
@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_compiled_pipeline_on_a_real_engine_is_recorded_with_readable_artifacts(
        target, monkeypatch):
    if not HOSTS[target]:
        pytest.skip(f"{'ARGO_SERVER' if target == 'argo' else 'KFP_HOST'} is not set")
    missing = [name for name in NEEDED if not ENV[name]]
    if missing:
        pytest.fail(f"{target} host is set: also set {', '.join(missing)} (see the module doc)")
    if ENV["MLFLOWLET_API_TOKEN"]:
        monkeypatch.setenv("MLFLOWLET_API_TOKEN", ENV["MLFLOWLET_API_TOKEN"])
    from mlflowlet import get_run_db
    from mlflowlet.compilers.submit import submit

    rows, label = 5, f"it-{uuid.uuid4().hex[:8]}"  # this submission's runs, told apart
    options = {"dbpath": ENV["MLFLOWLET_TEST_DBPATH"],
               "artifact_path": ENV["MLFLOWLET_TEST_ARTIFACT_PATH"]}
    if ENV["MLFLOWLET_TEST_TOKEN_SECRET"]:
        options["token_secret"] = ENV["MLFLOWLET_TEST_TOKEN_SECRET"]
    handle = submit(cp.diamond, target, host=HOSTS[target], image=ENV[NEEDED[0]],
                    arguments={"rows": rows, "label": label}, token=ENV["ARGO_TOKEN"],
                    namespace=ENV["MLFLOWLET_TEST_NS"], verify_ssl=False, **options)
    handle.wait(timeout=1200)
    assert handle.state == "completed", handle.url
    db = get_run_db(ENV["MLFLOWLET_TEST_DBPATH"])
    joins = [r for r in db.list_runs(name="join", last=50)
             if r["status"].get("results", {}).get("summary") == f"{label}:{rows}:10"]
    assert len(joins) == 1 and joins[0]["status"]["state"] == "completed"
    makes = [r for r in db.list_runs(name="make", last=50)
             if r["spec"].get("params", {}).get("rows") == rows
             and r["status"]["state"] == "completed"]
    assert makes, "the make step recorded no run"
    art = next(a for a in makes[0]["status"]["artifacts"] if a["key"] == "data")
    assert art["uri"].startswith(ENV["MLFLOWLET_TEST_ARTIFACT_PATH"].rstrip("/"))
    from mlflowlet.datastore import get_dataitem

    assert get_dataitem(art["uri"]).get() == b"0,1,2,3,4"  # written by a pod, read here
