import subprocess
import sys

from mlflowlet import get_run_db


def test_train_eval_example_runs_as_a_script_and_records_everything(examples_dir, dbdir):
    out = subprocess.run([sys.executable, "train_eval.py", "80"], cwd=examples_dir,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "pipeline train-eval" in out.stdout and "completed" in out.stdout
    assert "prep#0.dataset -> train(dataset)" in out.stdout
    assert "-> evaluate(model)" in out.stdout

    db = get_run_db()
    [pipe] = db.list_runs(labels={"kind": "pipeline"})
    assert pipe["status"]["state"] == "completed" and pipe["spec"]["params"]["rows"] == 80
    steps = pipe["status"]["steps"]
    assert set(steps) == {"prep", "train", "evaluate"}
    train = db.read_run(steps["train"]["uid"])
    assert train["status"]["results"]["best_iteration"] in (1, 2, 3)
    assert len(train["status"]["iterations"]) == 4  # header + the three learning rates
    kinds = {a["kind"] for a in db.list_artifacts(tree=pipe["metadata"]["uid"])}
    assert {"dataset", "model", "chart"} <= kinds
    lineage = db.list_lineage(pipeline_uid=pipe["metadata"]["uid"])
    assert {(r["output"], r["consumer_param"]) for r in lineage} == {
        ("dataset", "dataset"), ("model", "model")} and len(lineage) == 3


def test_train_eval_example_imports_without_running(examples_dir, dbdir):
    code = "import sys, train_eval; print(train_eval.train_eval.name, 'networkx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=examples_dir, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0 and out.stdout.split() == ["train-eval", "False"], out.stderr
    assert db_is_empty()


def db_is_empty():
    return len(get_run_db().list_runs()) == 0
