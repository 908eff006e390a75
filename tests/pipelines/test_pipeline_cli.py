"""``mlflowlet run file.py:pipe``, ``mlflowlet get lineage`` and ``mlflowlet resume``."""

import json
import textwrap

import pytest

from mlflowlet import get_run_db
from mlflowlet.cli import main

PIPE = textwrap.dedent('''
    import os
    from mlflowlet import DataItem, pipeline, step

    @step(outputs=["data"])
    def make(context, rows: int = 3):
        context.log_artifact("data", body=b"x" * rows)

    @step
    def size(context, data: DataItem) -> int:
        if os.environ.get("BREAK_SIZE"):
            raise RuntimeError("size is broken")
        return len(data.get())

    @pipeline
    def sized(rows: int = 3):
        size(data=make(rows=rows).outputs["data"])
''')


def cli(capsys, *args):
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def pipe_file(tmp_path):
    path = tmp_path / "sized_pipe.py"
    path.write_text(PIPE)
    return path


def _pipeline_run():
    [run] = get_run_db().list_runs(labels={"kind": "pipeline"}, last=1)
    return run


def test_run_pipeline_from_the_cli_with_params(capsys, pipe_file, dbdir):
    code, out, err = cli(capsys, "run", f"{pipe_file}:sized", "-p", "rows=7")
    assert code == 0, err
    run = _pipeline_run()
    assert run["spec"]["params"] == {"rows": 7} and run["status"]["state"] == "completed"
    size_uid = run["status"]["steps"]["size"]["uid"]
    assert get_run_db().read_run(size_uid)["status"]["results"] == {"return": 7}


def test_get_lineage_by_pipeline_uid_key_and_walk(capsys, pipe_file, dbdir):
    cli(capsys, "run", f"{pipe_file}:sized")
    uid = _pipeline_run()["metadata"]["uid"]
    code, out, _ = cli(capsys, "get", "lineage", uid, "-o", "json")
    rows = json.loads(out)
    assert code == 0 and [(r["output"], r["consumer_param"]) for r in rows] == [("data", "data")]
    code, out, _ = cli(capsys, "get", "lineage", "data")
    assert code == 0 and "producer" in out.splitlines()[0] and "data" in out.splitlines()[2]
    consumer = rows[0]["consumer_uid"]
    code, out, _ = cli(capsys, "get", "lineage", consumer, "--upstream", "-o", "json")
    assert [r["producer_uid"] for r in json.loads(out)] == [rows[0]["producer_uid"]]


def test_resume_reruns_the_failed_step(capsys, pipe_file, dbdir, monkeypatch):
    monkeypatch.setenv("BREAK_SIZE", "1")
    code, _, _ = cli(capsys, "run", f"{pipe_file}:sized", "-p", "rows=4")
    assert code == 1
    failed = _pipeline_run()
    assert failed["status"]["steps"]["size"]["state"] == "error"
    monkeypatch.delenv("BREAK_SIZE")
    code, out, err = cli(capsys, "resume", failed["metadata"]["uid"])
    assert code == 0, err
    assert f"(resumed from {failed['metadata']['uid']})" in out and "reused" in out
    resumed = [r for r in get_run_db().list_runs(labels={"resumed_from":
                                                          failed["metadata"]["uid"]})]
    assert len(resumed) == 1 and resumed[0]["status"]["state"] == "completed"
    assert resumed[0]["status"]["steps"]["make"]["uid"] == \
        failed["status"]["steps"]["make"]["uid"]


def test_resume_of_a_run_that_is_no_pipeline_fails_in_one_line(capsys, dbdir):
    from mlflowlet import new_runner

    run = new_runner().run(handler=lambda context: None)
    code, _, err = cli(capsys, "resume", run.uid)
    assert code == 1 and "not a pipeline run" in err and len(err.strip().splitlines()) == 1
