"""RunList / ArtifactList views: terminal table, HTML, DataFrame, rows."""

from __future__ import annotations

import pytest

from mlflowlet import get_run_db, new_runner, new_task
from mlflowlet.db.lists import ArtifactList, RunList


def training(context, p1: int = 1, p2: str = "a"):
    context.log_result("accuracy", p1 * 2)
    context.log_result("loss", p1 * 3)
    context.set_label("framework", "sklearn")
    context.log_artifact("model.txt", body=b"weights")


@pytest.fixture
def runs():
    runner = new_runner()
    runner.run(handler=training, params={"p1": 1})
    runner.run(handler=training, params={"p1": 2, "p2": "<b>"})
    return get_run_db().list_runs()


def test_list_runs_returns_a_run_list(runs):
    assert isinstance(runs, RunList) and len(runs) == 2


def test_show_prints_a_table(runs, capsys):
    assert runs.show() is None
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["project", "uid", "iter", "start", "state"]
    assert set(lines[1]) <= {"-", " "}
    assert len(lines) == 4
    for run in runs:
        assert any(run["metadata"]["uid"] in line and "completed" in line for line in lines[2:])


def test_show_without_display_returns_escaped_html(runs):
    html = runs.show(display=False)
    assert html.startswith("<table") and html.count("<tr>") == 3
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert runs._repr_html_() == html


def test_to_df_has_flat_param_and_result_columns(runs):
    pytest.importorskip("pandas")
    df = runs.to_df()
    assert len(df) == 2
    for column in ("uid", "state", "param.p1", "result.accuracy", "result.loss",
                   "label.framework"):
        assert column in df.columns
    assert sorted(df["result.accuracy"]) == [2, 4]
    assert sorted(df["param.p1"]) == [1, 2]


def test_to_rows_gives_a_header_then_one_row_per_run(runs):
    rows = runs.to_rows()
    assert rows[0] == list(RunList.columns)
    assert len(rows) == 3
    uid_col = rows[0].index("uid")
    assert {r[uid_col] for r in rows[1:]} == {r["metadata"]["uid"] for r in runs}


def test_objects_are_run_objects(runs):
    objs = runs.objects()
    assert {o.state for o in objs} == {"completed"}
    assert sorted(o.results["accuracy"] for o in objs) == [2, 4]


def test_empty_lists_still_render(capsys):
    empty = get_run_db().list_runs(name="none")
    empty.show()
    assert "uid" in capsys.readouterr().out
    assert empty.to_rows() == [list(RunList.columns)]
    assert "<table" in empty.show(display=False)


def test_artifact_list_views(runs, capsys):
    arts = get_run_db().list_artifacts("", tag="*")
    assert isinstance(arts, ArtifactList) and len(arts) == 2
    arts.show()
    out = capsys.readouterr().out
    assert "model.txt" in out and out.count("model.txt") >= 2
    rows = arts.to_rows()
    assert rows[0] == list(ArtifactList.columns) and len(rows) == 3
    assert "model.txt" in arts.show(display=False)
    pytest.importorskip("pandas")
    df = arts.to_df()
    assert set(df["key"]) == {"model.txt"} and "producer.uid" in df.columns


def test_hyper_run_list_includes_iterations_on_request():
    task = new_task().with_hyper_params({"p1": [1, 2]}, selector="max.accuracy")
    new_runner().run(task, handler=training)
    db = get_run_db()
    assert len(db.list_runs()) == 1
    assert sorted(r["metadata"]["iteration"] for r in db.list_runs(iter=True)) == [0, 1, 2]
