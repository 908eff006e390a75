"""Tasks (``new_task`` / ``RunTemplate``) and runs (``RunObject``)."""

from __future__ import annotations

import json

import pytest
import yaml

from mlflowlet import NewRun, NewTask, RunObject, RunTemplate, new_task
from mlflowlet.errors import HyperParamError, ParameterError, SecretsError


def training(context, p1: int = 1):
    context.log_result("accuracy", p1)


def test_new_task_fills_every_field():
    task = new_task(
        name="train", project="proj", handler=training, params={"p1": 5},
        inputs={"data": "data.csv"}, outputs=["model"], secrets=("env", "A,B"),
        labels={"owner": "me", "n": 3}, hyper_params={"p1": [1, 2]}, selector="max.accuracy",
        artifact_path="/tmp/arts",
    )
    assert isinstance(task, RunTemplate)
    assert task.metadata.name == "train" and task.metadata.project == "proj"
    assert task.spec.handler == "training"
    assert task.spec.params == {"p1": 5}
    assert task.spec.inputs == {"data": "data.csv"}
    assert task.spec.outputs == ["model"]
    assert task.spec.secret_sources == [{"kind": "env", "source": "A,B"}]
    assert task.metadata.labels == {"owner": "me", "n": "3"}
    assert task.spec.hyper_params == {"p1": [1, 2]}
    assert task.spec.selector == "max.accuracy" and task.spec.strategy == "grid"
    assert task.spec.artifact_path == "/tmp/arts"


def test_new_task_takes_its_name_from_the_handler():
    assert new_task(handler=training).metadata.name == "training"


def test_new_task_with_param_file_defaults_to_list_strategy():
    task = new_task(param_file="params.csv", selector="max.accuracy")
    assert task.spec.param_file == "params.csv" and task.spec.strategy == "list"


def test_aliases_are_new_task():
    assert NewRun is new_task and NewTask is new_task


def test_chainable_methods_return_the_task():
    task = (
        new_task("t")
        .with_params(p1=1)
        .with_params({"p2": "x"})
        .with_input("infile", "in.txt")
        .with_secrets("file", "secrets.txt")
        .set_label("stage", "dev")
        .with_hyper_params({"p1": [1, 2, 3]}, selector="min.loss", max_errors=2, parallel=2)
    )
    assert task.spec.params == {"p1": 1, "p2": "x"}
    assert task.spec.inputs == {"infile": "in.txt"}
    assert task.spec.secret_sources == [{"kind": "file", "source": "secrets.txt"}]
    assert task.metadata.labels == {"stage": "dev"}
    assert task.spec.selector == "min.loss"
    assert task.spec.max_errors == 2 and task.spec.parallel == 2


def test_with_param_file_sets_file_selector_and_strategy():
    task = new_task().with_param_file("params.csv", "max.accuracy")
    assert (task.spec.param_file, task.spec.selector, task.spec.strategy) == (
        "params.csv", "max.accuracy", "list")


def test_copy_is_deep():
    task = new_task(params={"p1": 1}, labels={"a": "1"})
    other = task.copy().with_params(p1=2).set_label("a", "2")
    assert task.spec.params == {"p1": 1} and task.metadata.labels == {"a": "1"}
    assert other.spec.params == {"p1": 2}


def test_to_dict_and_to_yaml_round_trip():
    task = new_task("t", params={"p1": 5, "lr": 0.1}, labels={"k": "v"})
    data = task.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["metadata"]["name"] == "t" and data["spec"]["params"] == {"p1": 5, "lr": 0.1}
    assert yaml.safe_load(task.to_yaml()) == data
    assert RunTemplate.model_validate(data).spec.params == {"p1": 5, "lr": 0.1}


def test_inline_secret_values_are_not_in_to_dict_or_yaml():
    task = new_task().with_secrets("inline", {"TOKEN": "s3cr3t-value"})
    data = task.to_dict()
    assert data["spec"]["secret_sources"] == [{"kind": "inline", "source": None, "keys": ["TOKEN"]}]
    assert "s3cr3t-value" not in json.dumps(data)
    assert "s3cr3t-value" not in task.to_yaml()
    assert "s3cr3t-value" not in task.to_json()


def test_unknown_secrets_kind_is_refused():
    with pytest.raises(SecretsError, match="vault"):
        new_task().with_secrets("vault", "x")


def test_with_params_refuses_a_non_dict():
    with pytest.raises(ParameterError, match="dict"):
        new_task().with_params([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [5, "abc", None, {"a": 1}])
def test_with_hyper_params_refuses_a_non_list_value(value):
    with pytest.raises(HyperParamError, match="'p1'"):
        new_task().with_hyper_params({"p1": value})


def test_with_hyper_params_refuses_unequal_lists_for_list_strategy():
    with pytest.raises(HyperParamError, match="equal length"):
        new_task().with_hyper_params({"a": [1, 2], "b": [1]}, strategy="list")


def test_with_hyper_params_refuses_an_unknown_strategy():
    with pytest.raises(HyperParamError, match="bogus"):
        new_task().with_hyper_params({"a": [1]}, strategy="bogus")


def test_with_hyper_params_refuses_a_bad_selector_and_stop_condition():
    with pytest.raises(HyperParamError):
        new_task().with_hyper_params({"a": [1]}, selector="min.")
    with pytest.raises(HyperParamError, match="stop condition"):
        new_task().with_hyper_params({"a": [1]}, stop_condition="accuracy >>> 3")


def _run(**status) -> RunObject:
    run = RunObject()
    run.metadata.uid, run.metadata.name = "u1", "r"
    for key, value in status.items():
        setattr(run.status, key, value)
    return run


def test_run_object_shortcuts_and_outputs():
    run = _run(state="completed", results={"accuracy": 0.9},
               artifacts=[{"key": "model", "uri": "/x/model.pkl"}])
    assert run.uid == "u1" and run.state == "completed"
    assert run.results == {"accuracy": 0.9}
    assert run.output("accuracy") == 0.9
    assert run.output("model") == "/x/model.pkl"
    assert run.outputs == {"accuracy": 0.9, "model": "/x/model.pkl"}
    with pytest.raises(ParameterError, match="'nope'"):
        run.output("nope")


def test_run_object_to_dict_and_yaml_carry_the_status():
    run = _run(state="error", error="boom")
    data = run.to_dict()
    assert data["status"]["state"] == "error" and data["status"]["error"] == "boom"
    assert yaml.safe_load(run.to_yaml())["status"]["error"] == "boom"
    assert RunObject.model_validate(data).state == "error"


def test_run_object_show_returns_html_with_the_run(capsys):
    run = _run(state="completed", results={"accuracy": 0.9})
    html = run.show(display=False)
    assert "<table" in html and "u1" in html and "accuracy" in html
    assert run.show() is None
    out = capsys.readouterr().out
    assert "u1" in out and "completed" in out


def test_with_param_file_takes_path_by_keyword_and_param_file_alias():
    task = new_task().with_param_file(path="params.csv", selector="max.accuracy", strategy="list")
    assert (task.spec.param_file, task.spec.selector) == ("params.csv", "max.accuracy")
    assert new_task().with_param_file(param_file="p.json").spec.param_file == "p.json"
    with pytest.raises(ParameterError, match="with_param_file"):
        new_task().with_param_file()


# -- a run keeps the run DB it was recorded in ---------------------------------------------------


def _printing(context):
    print("hello from the handler")
    context.log_metric("loss", 0.5)


def test_a_run_reads_back_through_the_db_it_was_recorded_in(tmp_path, dbdir):
    from mlflowlet import get_run_db, new_runner

    other = get_run_db(str(tmp_path / "other"))  # not the default DB (MLFLOWLET_DBPATH)
    run = new_runner().run(handler=_printing, db=other)
    assert "hello from the handler" in run.logs()
    assert [m["value"] for m in run.metric_history("loss")] == [0.5]
    assert run.refresh().state == "completed"
    assert run.refresh().refresh().logs() == run.logs()  # a refreshed run keeps the DB too
    with pytest.raises(Exception, match=run.uid):
        get_run_db().read_run(run.uid)  # the default DB never saw it


def test_copies_share_the_db_and_pickles_keep_its_url(tmp_path):
    import copy
    import pickle

    from mlflowlet import get_run_db, new_runner

    db = get_run_db(str(tmp_path / "other"))
    run = new_runner().run(handler=_printing, db=db)
    assert copy.deepcopy(run)._db is db and run.copy()._db is db  # never a copied connection
    restored = pickle.loads(pickle.dumps(run))
    assert restored._db is None and restored._db_url == db.url
    assert "hello from the handler" in restored.logs()  # opened again by its URL


def test_a_run_that_kept_no_db_reads_the_default_one(dbdir):
    from mlflowlet import get_run_db, new_runner

    run = new_runner().run(handler=_printing)
    bare = RunObject.model_validate(get_run_db().read_run(run.uid))
    assert bare._db is None and "hello from the handler" in bare.logs()


def test_a_run_whose_db_was_closed_reads_back_by_its_url(tmp_path):
    from mlflowlet import get_run_db, new_runner

    db = get_run_db(str(tmp_path / "other"), cached=False)
    run = new_runner().run(handler=_printing, db=db)
    db.close()
    assert db.closed and run._db is db
    assert "hello from the handler" in run.logs()  # opened again at db.url, not the closed one
    assert run.refresh().state == "completed"
    assert [m["value"] for m in run.metric_history("loss")] == [0.5]


def test_get_run_db_opens_a_cached_db_again_once_it_was_closed(tmp_path):
    from mlflowlet import get_run_db

    first = get_run_db(str(tmp_path / "x"))
    assert get_run_db(str(tmp_path / "x")) is first and not first.closed
    first.close()
    again = get_run_db(str(tmp_path / "x"))
    assert again is not first and not again.closed
    again.store_run({"metadata": {"uid": "u1", "name": "n"}}, "u1")
    assert again.read_run("u1")["metadata"]["name"] == "n"
