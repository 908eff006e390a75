"""The run context: every property and method, get_or_create_ctx, tracked scripts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from mlflowlet import (
    Context,
    DataItem,
    MLClientCtx,
    get_or_create_ctx,
    get_run_db,
    new_runner,
    new_task,
)
from mlflowlet.context import get_active_context
from mlflowlet.errors import DataNotFoundError, RunError, SecretsError


def _run(handler, task=None, **kw):
    return new_runner().run(task, handler=handler, **kw)


def test_mlclientctx_is_context():
    assert MLClientCtx is Context


def test_every_property_inside_a_handler(tmp_path, dbdir):
    (tmp_path / "in.txt").write_text("hello")
    seen = {}

    def handler(context, p1: int = 1):
        seen.update(
            name=context.name, uid=context.uid, iteration=context.iteration,
            project=context.project, labels=context.labels, annotations=context.annotations,
            parameters=context.parameters, inputs=context.inputs, tag=context.tag,
            artifact_path=context.artifact_path, out_path=context.out_path,
            logger=context.logger, log_level=context.log_level,
        )
        context.log_result("r", 1)
        seen["results"] = context.results
        context.log_artifact("a.txt", body=b"x")
        seen["artifacts"] = context.artifacts

    task = new_task(project="proj", labels={"team": "ml"}).with_input("data", "in.txt")
    run = _run(handler, task, name="props", params={"p1": 3})
    assert seen["name"] == "props" and seen["uid"] == run.uid and seen["iteration"] == 0
    assert seen["project"] == "proj"
    assert seen["labels"]["team"] == "ml"
    assert seen["annotations"] == {}
    assert seen["parameters"] == {"p1": 3}
    assert isinstance(seen["inputs"]["data"], DataItem) and seen["inputs"]["data"].get() == b"hello"
    assert seen["tag"] == ""
    assert seen["results"] == {"r": 1}
    assert [a["key"] for a in seen["artifacts"]] == ["a.txt"]
    assert seen["artifact_path"] == seen["out_path"] == str(dbdir / "artifacts" / "proj" / run.uid)
    assert seen["logger"].name == "mlflowlet" and seen["log_level"] == "info"


def test_artifact_path_default_is_under_the_db_dir(dbdir):
    def handler(context):
        context.log_artifact("model.txt", body="weights")

    run = _run(handler)
    uri = run.output("model.txt")
    assert uri == str(dbdir / "artifacts" / "default" / run.uid / "model.txt")
    assert Path(uri).read_text() == "weights"


def test_artifact_path_setting_moves_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOWLET_ARTIFACT_PATH", str(tmp_path / "store"))

    def handler(context):
        context.log_artifact("m.txt", body="w")

    run = _run(handler)
    assert run.output("m.txt") == str(tmp_path / "store" / "default" / run.uid / "m.txt")


def test_artifact_path_of_a_run_is_templated(tmp_path):
    def handler(context):
        context.log_artifact("m.txt", body="w")

    run = _run(handler, artifact_path=str(tmp_path / "out" / "{{run.uid}}"))
    assert run.output("m.txt") == str(tmp_path / "out" / run.uid / "m.txt")


def test_get_param_records_the_default(dbdir):
    def handler(context):
        context.log_result("lr", context.get_param("lr", 0.5))
        context.log_result("p1", context.get_param("p1", 7))

    run = _run(handler, params={"p1": 2}, strict=False)  # read with get_param, not bound
    assert run.results == {"lr": 0.5, "p1": 2}
    stored = get_run_db().read_run(run.uid, project=run.metadata.project)
    assert stored["spec"]["params"] == {"p1": 2, "lr": 0.5}


def test_get_secret_reads_a_file_source(tmp_path):
    (tmp_path / "s.txt").write_text("API_KEY=abc-123-xyz\n")

    def handler(context):
        context.log_result("has_key", context.get_secret("API_KEY") == "abc-123-xyz")
        context.log_result("missing", context.get_secret("NOPE"))

    run = _run(handler, new_task().with_secrets("file", "s.txt"))
    assert run.results == {"has_key": True, "missing": None}


def test_a_missing_secrets_file_fails_the_run_naming_it():
    def handler(context):
        pass

    with pytest.raises(RunError, match="nope.txt") as info:
        _run(handler, new_task().with_secrets("file", "nope.txt"))
    assert "\n" not in str(info.value)
    assert info.value.run.state == "error"


def test_get_input_returns_a_dataitem_and_url_adds_one(tmp_path):
    (tmp_path / "a.txt").write_text("AAA")
    (tmp_path / "b.txt").write_text("BBB")

    def handler(context):
        item = context.get_input("a")
        context.log_result("a", item.get().decode())
        context.log_result("b", context.get_input("b", url="b.txt").get().decode())
        context.log_result("inputs", sorted(context.inputs))

    run = _run(handler, inputs={"a": "a.txt"})
    assert run.results == {"a": "AAA", "b": "BBB", "inputs": ["a", "b"]}


def test_get_input_of_a_key_not_given_reads_the_key_as_a_path(tmp_path):
    (tmp_path / "infile.txt").write_text("from the file")

    def handler(context):
        context.log_result("text", context.get_input("infile.txt").get().decode())

    run = _run(handler)
    assert run.results == {"text": "from the file"}
    assert run.spec.inputs == {"infile.txt": "infile.txt"}


def test_get_input_of_a_missing_file_names_it():
    def handler(context):
        context.get_input("nokey.csv").get()

    with pytest.raises(RunError, match="nokey.csv") as info:
        _run(handler)
    assert "\n" not in str(info.value)


def test_log_result_and_results_keep_json_values():
    def handler(context):
        context.log_result("f", 0.25)
        context.log_results({"i": 3, "s": "x", "l": (1, 2), "d": {"k": None}})

    run = _run(handler)
    assert run.results == {"f": 0.25, "i": 3, "s": "x", "l": [1, 2], "d": {"k": None}}
    stored = get_run_db().read_run(run.uid)["status"]["results"]
    assert stored == run.results


def test_a_result_whose_dict_keys_collide_as_json_is_refused_not_halved():
    # {1: 'a', '1': 'b'} was stored as {'1': 'b'}: a value lost without a word
    def handler(context):
        context.log_result("kept", {1: "one", 2.5: "x", None: "n"})  # distinct once text
        context.log_result("d", {1: "int-one", "1": "str-one"})

    run = _run(handler, raise_on_error=False)
    assert run.state == "error" and "dict keys 1 and '1' both become JSON key '1'" in run.error
    assert get_run_db().read_run(run.uid)["status"]["results"] == {
        "kept": {"1": "one", "2.5": "x", "None": "n"}
    }


@pytest.mark.parametrize(
    ("value", "shown"),
    [(b"\x00\xffab", "(bytes)"), ({1}, "{1} (set)"), (1j, "(complex)"), ({(1, 2): 3}, "(tuple)")],
)
def test_a_result_without_an_exact_json_form_fails_naming_it_not_stored_as_its_str(value, shown):
    # b'\x00\xffab' was stored as the text "b'\\x00\\xffab'" and {1} as '{1}'
    def handler(context):
        context.log_result("ok", 1)
        context.log_result("bad", value)

    run = _run(handler, raise_on_error=False)
    assert run.state == "error" and "result 'bad': " in run.error and shown in run.error
    assert run.results == {"ok": 1}
    assert get_run_db().read_run(run.uid)["status"]["results"] == {"ok": 1}


def test_log_metric_series_are_read_back_with_the_run():
    def handler(context):
        for loss in (0.9, 0.5, 0.3):
            context.log_metric("loss", loss)
        context.log_metric("acc", 0.1, step=10)
        context.log_metrics({"acc": 0.2, "f1": 0.3}, step=20)

    run = _run(handler)
    loss = run.metric_history("loss")
    assert [(m["step"], m["value"]) for m in loss] == [(0, 0.9), (1, 0.5), (2, 0.3)]
    acc = get_run_db().get_metrics(run.uid, key="acc")
    assert [(m["step"], m["value"]) for m in acc] == [(10, 0.1), (20, 0.2)]
    assert {m["key"] for m in run.metric_history()} == {"loss", "acc", "f1"}
    assert run.status.metrics == {"loss": 0.3, "acc": 0.2, "f1": 0.3}


def test_set_label_and_annotation_respect_replace():
    def handler(context):
        context.set_label("a", 1)
        context.set_label("a", 2, replace=False)
        context.set_label("b", "x")
        context.set_label("b", "y")
        context.set_annotation("note", "first")
        context.set_annotation("note", "second", replace=False)

    run = _run(handler)
    assert run.metadata.labels["a"] == "1" and run.metadata.labels["b"] == "y"
    assert run.metadata.annotations == {"note": "first"}
    assert get_run_db().list_runs(labels="b=y")[0]["metadata"]["uid"] == run.uid


def test_log_artifact_with_body_key_and_object():
    from mlflowlet.artifacts import Artifact, TableArtifact

    def handler(context):
        art = context.log_artifact("page.html", body="<b>hi</b>", viewer="web-app",
                                   labels={"k": "v"}, tag="v1")
        assert isinstance(art, Artifact)
        context.log_artifact(TableArtifact("table.csv", "1,2\n3,4\n", header=["a", "b"]))

    run = _run(handler)
    db = get_run_db()
    page = db.read_artifact("page.html", project="default")
    assert page["viewer"] == "web-app" and page["labels"] == {"k": "v"}
    assert page["producer"]["uid"] == run.uid and page["tree"] == run.uid
    assert page["size"] == len(b"<b>hi</b>")
    assert page["hash"].startswith("blake3:") and len(page["hash"]) == len("blake3:") + 64
    assert db.read_artifact("page.html", tag="v1", project="default")["uid"] == page["uid"]
    assert run.artifact("table.csv").get() == b"1,2\n3,4\n"


def test_log_artifact_from_a_local_file(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\x00\x01\x02")

    def handler(context):
        context.log_artifact("model", local_path=str(tmp_path / "model.bin"))

    run = _run(handler)
    assert run.artifact("model").get() == b"\x00\x01\x02"


@pytest.mark.parametrize("key", ["../escape.txt", "/etc/passwd", "a/../../b", "nul\x00key"])
def test_path_traversal_is_refused_with_a_one_line_error(key):
    def handler(context):
        context.log_result("before", 1)
        context.log_artifact(key, body=b"x")

    with pytest.raises(RunError) as info:
        _run(handler)
    message = str(info.value)
    assert "\n" not in message and "refused path" in message
    assert info.value.run.results == {"before": 1}


def test_a_body_of_an_unknown_type_is_refused_naming_the_key():
    def handler(context):
        context.log_artifact("weird", body=object())

    with pytest.raises(RunError, match="'weird'") as info:
        _run(handler)
    assert "\n" not in str(info.value)


def test_log_dataset_and_log_model():
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")

    def handler(context):
        df = pd.DataFrame({"x": [1, 2, 3], "y": [0.1, 0.2, 0.3]})
        context.log_dataset("data", df, format="csv")
        context.log_model("model", body=b"weights", metrics={"acc": 0.9},
                          parameters={"depth": 3}, framework="sklearn")

    run = _run(handler)
    assert list(run.artifact("data").as_df()["x"]) == [1, 2, 3]
    model = get_run_db().read_artifact("model", project="default")
    assert model["kind"] == "model" and run.artifact("model").get() == b"weights"
    assert model["extra"]["metrics"] == {"acc": 0.9}
    assert model["extra"]["parameters"] == {"depth": 3}
    assert model["extra"]["framework"] == "sklearn"


def test_commit_flushes_mid_run():
    seen = {}

    def handler(context):
        context.log_result("early", 1)
        context.commit()
        stored = get_run_db().read_run(context.uid, project=context.project)
        seen["state"], seen["results"] = stored["status"]["state"], stored["status"]["results"]

    _run(handler)
    assert seen == {"state": "running", "results": {"early": 1}}


def test_to_dict_json_yaml_hold_no_secret_values():
    def handler(context):
        data = context.to_dict()
        assert json.loads(context.to_json()) == data
        assert yaml.safe_load(context.to_yaml()) == data
        text = context.to_json() + context.to_yaml()
        context.log_result("leak", "t0p-s3cret" in text)
        context.log_result("keys", data["spec"]["secret_sources"][0]["keys"])

    run = _run(handler, new_task().with_secrets("inline", {"TOKEN": "t0p-s3cret"}))
    assert run.results == {"leak": False, "keys": ["TOKEN"]}


def _db_bytes(dbdir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in dbdir.glob("mlflowlet.db*"))


def test_secrets_are_masked_in_output_error_and_db(tmp_path, dbdir, monkeypatch):
    monkeypatch.setenv("MY_TOKEN", "env-s3cret-value")
    (tmp_path / "s.txt").write_text("FILE_KEY=file-s3cret-value\n")

    def handler(context):
        print("token is env-s3cret-value")  # never read through get_secret
        print("file key is", context.get_secret("FILE_KEY"))
        context.logger.info("logged env-s3cret-value")
        raise ValueError("failed with file-s3cret-value")

    task = new_task().with_secrets("env", "MY_TOKEN").with_secrets("file", "s.txt")
    run = _run(handler, task, raise_on_error=False)
    log = run.logs()
    assert "token is ***" in log and "file key is ***" in log and "logged ***" in log
    assert "ValueError: failed with ***" in run.status.error
    assert "s3cret-value" not in log and "s3cret-value" not in run.status.error
    get_run_db().close()
    assert b"s3cret-value" not in _db_bytes(dbdir)


def test_captured_stdout_stderr_and_logger_land_in_the_log():
    def handler(context):
        print("to stdout")
        print("to stderr", file=sys.stderr)
        context.logger.info("from the logger")
        context.logger.debug("debug is below the level")

    run = _run(handler)
    log = run.logs()
    assert "to stdout" in log and "to stderr" in log and "from the logger" in log
    assert "debug is below" not in log


def test_logger_lines_survive_a_library_configuring_logging():
    # dictConfig (import-linter, many apps) disables every existing logger by default
    import logging.config

    _run(lambda context: context.logger.info("before"))
    logging.config.dictConfig({"version": 1})
    run = _run(lambda context: context.logger.info("after dictConfig"))
    assert "after dictConfig" in run.logs()


def test_a_logged_line_lands_once_however_many_runs_used_the_logger():
    for _ in range(3):
        _run(lambda context: context.logger.info("warm"))
    run = _run(lambda context: context.logger.info("only once"))
    assert run.logs().count("only once") == 1


def test_logs_of_a_run_in_another_db_come_from_that_db(tmp_path):
    db = get_run_db(str(tmp_path / "other"))

    def handler(context):
        print("in the other db")

    run = new_runner().run(handler=handler, db=db)
    assert "in the other db" in run.logs()


def test_run_provenance_is_recorded():
    def handler(context):
        pass

    run = _run(handler)
    status = run.status
    assert status.host and status.python_version and len(status.code_hash) == 64
    assert run.metadata.owner
    assert status.start_time and status.end_time and status.last_update
    assert status.start_time <= status.end_time


# -- get_or_create_ctx ---------------------------------------------------------------------


def test_get_or_create_ctx_inside_a_handler_returns_the_active_context():
    got = {}

    def handler(context):
        got["same"] = get_or_create_ctx("ignored") is context

    _run(handler)
    assert got == {"same": True}
    assert get_active_context() is None


def test_get_or_create_ctx_from_a_spec():
    spec = new_task("from-spec", params={"p1": 4}).to_dict()
    with get_or_create_ctx("other", spec=spec) as ctx:
        assert ctx.name == "from-spec" and ctx.get_param("p1") == 4
        assert get_or_create_ctx("again") is ctx
        ctx.log_result("r", 1)
    stored = get_run_db().read_run(ctx.uid, project=ctx.project)
    assert stored["status"]["state"] == "completed" and stored["status"]["results"] == {"r": 1}
    assert get_active_context() is None


def test_get_or_create_ctx_spec_wins_over_event_and_env(monkeypatch):
    monkeypatch.setenv("MLFLOWLET_EXEC_CONFIG", new_task("env", params={"src": "env"}).to_json())
    event = type("Event", (), {"body": new_task("ev", params={"src": "event"}).to_json()})()
    with get_or_create_ctx("x", spec={"metadata": {"name": "spec"}}, event=event) as ctx:
        assert ctx.name == "spec"
    with get_or_create_ctx("x", event=event) as ctx:
        assert ctx.name == "ev" and ctx.parameters == {"src": "event"}
    with get_or_create_ctx("x") as ctx:
        assert ctx.name == "env" and ctx.parameters == {"src": "env"}
    with get_or_create_ctx("x", with_env=False) as ctx:
        assert ctx.name == "x" and ctx.parameters == {}


def test_get_or_create_ctx_from_the_exec_config_keeps_the_uid(monkeypatch):
    config = new_task("child", params={"p1": 9}).to_dict()
    config["metadata"]["uid"] = "f" * 32
    monkeypatch.setenv("MLFLOWLET_EXEC_CONFIG", json.dumps(config))
    with get_or_create_ctx("ignored") as ctx:
        assert ctx.uid == "f" * 32 and ctx.get_param("p1") == 9
    assert get_run_db().read_run("f" * 32)["status"]["state"] == "completed"


def test_get_or_create_ctx_without_anything_starts_a_tracked_local_run():
    with get_or_create_ctx("fresh", project="proj") as ctx:
        assert ctx.name == "fresh" and ctx.project == "proj" and len(ctx.uid) == 32
        stored = get_run_db().read_run(ctx.uid, project="proj")
        assert stored["status"]["state"] == "running"


def test_get_or_create_ctx_with_block_records_an_error():
    with pytest.raises(KeyError):
        with get_or_create_ctx("boom") as ctx:
            ctx.log_result("kept", 1)
            raise KeyError("xyz")
    stored = get_run_db().read_run(ctx.uid)
    assert stored["status"]["state"] == "error" and "KeyError: 'xyz'" in stored["status"]["error"]
    assert stored["status"]["results"] == {"kept": 1}


def test_get_or_create_ctx_refuses_a_missing_secrets_file():
    spec = new_task().with_secrets("file", "missing-secrets.txt").to_dict()
    with pytest.raises(SecretsError, match="missing-secrets.txt"):
        get_or_create_ctx("x", spec=spec)


def test_get_input_of_a_missing_file_is_a_data_not_found_error():
    with get_or_create_ctx("x") as ctx:
        with pytest.raises(DataNotFoundError, match="absent.txt"):
            ctx.get_input("absent.txt").get()


# -- scripts in their own process -------------------------------------------------------------


def _python(script: Path, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_training_script_alone_is_tracked_and_completed(examples_dir, dbdir):
    proc = _python(examples_dir / "training.py", examples_dir)
    assert proc.returncode == 0, proc.stderr
    runs = get_run_db().list_runs(name="train")
    assert len(runs) == 1
    run = runs.objects()[0]
    assert run.state == "completed"
    assert run.results == {"accuracy": 2, "loss": 3}
    assert run.spec.params == {"p1": 1, "p2": "a-string"}
    assert run.metadata.labels["framework"] == "sklearn"
    keys = {a["key"] for a in get_run_db().list_artifacts(project=run.metadata.project)}
    assert {"model.txt", "results.html", "dataset.csv", "chart.html"} <= keys
    assert f"Run: train (uid={run.uid})" in run.logs()


def test_script_with_an_uncaught_exception_ends_in_error(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text(textwrap.dedent("""
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("fails")
        ctx.log_result("before", 1)
        print("printed before the crash")
        raise ValueError("boom in script")
    """))
    proc = _python(script, tmp_path)
    assert proc.returncode == 1 and "ValueError: boom in script" in proc.stderr
    run = get_run_db().list_runs(name="fails").objects()[0]
    assert run.state == "error"
    assert "Traceback" in run.status.error and "ValueError: boom in script" in run.status.error
    assert run.results == {"before": 1}
    log = run.logs()
    assert "printed before the crash" in log and "ValueError: boom in script" in log


def test_script_secrets_are_masked_in_its_log(tmp_path):
    (tmp_path / "s.txt").write_text("PASSWORD=hunter2-secret\n")
    script = tmp_path / "leaky.py"
    script.write_text(textwrap.dedent("""
        from mlflowlet import get_or_create_ctx
        ctx = get_or_create_ctx("leaky")
        print("password:", ctx.get_secret("PASSWORD"))
    """))
    config = new_task("leaky").with_secrets("file", str(tmp_path / "s.txt")).to_json()
    proc = _python(script, tmp_path, {"MLFLOWLET_EXEC_CONFIG": config})
    assert proc.returncode == 0, proc.stderr
    run = get_run_db().list_runs(name="leaky").objects()[0]
    assert run.state == "completed" and "password: ***" in run.logs()
    assert "hunter2" not in run.logs()


def test_git_repo_and_commit_of_the_handler_are_recorded(tmp_path):
    repo = tmp_path / "checkout"
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "refs" / "heads" / "main").write_text("ab" * 20 + "\n")
    (repo / ".git" / "config").write_text(
        '[core]\n\tbare = false\n[remote "origin"]\n\turl = https://example.com/team/ml.git\n'
    )
    (repo / "pkg").mkdir()
    (repo / "pkg" / "git_handlers.py").write_text("def train(context):\n    return 1\n")
    run = new_runner().run(handler=f"{repo}/pkg/git_handlers.py:train")
    assert run.status.git == {"repo": "https://example.com/team/ml.git", "commit": "ab" * 20}
    assert get_run_db().read_run(run.uid)["status"]["git"]["commit"] == "ab" * 20


def _fake_checkout(repo, url: str, commit: str) -> None:
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "refs" / "heads" / "main").write_text(commit + "\n")
    (repo / ".git" / "config").write_text(f'[remote "origin"]\n\turl = {url}\n')
    (repo / "pkg").mkdir()
    (repo / "pkg" / "git_handlers.py").write_text(
        "def train(context, x: int = 0):\n    return x\n"
    )


@pytest.mark.parametrize("url, recorded", [
    ("https://alice:ghp_SECRET123@github.com/t/ml.git", "https://github.com/t/ml.git"),
    ("https://ghp_SECRET123@github.com/t/ml.git", "https://github.com/t/ml.git"),
    ("ssh://git:SECRET123@host.example/t/ml.git", "ssh://git@host.example/t/ml.git"),
    ("git@github.com:t/ml.git", "git@github.com:t/ml.git"),
])
def test_credentials_in_the_git_remote_never_reach_the_record(tmp_path, url, recorded):
    _fake_checkout(tmp_path / "checkout", url, "cd" * 20)
    run = new_runner().run(handler=f"{tmp_path}/checkout/pkg/git_handlers.py:train")
    assert run.status.git["repo"] == recorded
    assert "SECRET123" not in json.dumps(get_run_db().read_run(run.uid))


def test_a_sweep_of_a_handler_named_by_path_records_the_git_of_that_handler(tmp_path):
    """The parent of such a sweep reads git elsewhere (no handler object): iterations read it."""
    _fake_checkout(tmp_path / "checkout", "https://example.com/t/ml.git", "ef" * 20)
    task = new_task(name="named").with_hyper_params({"x": [1, 2]})
    run = new_runner().run(task, handler=f"{tmp_path}/checkout/pkg/git_handlers.py:train")
    assert run.state == "completed"
    for it in (1, 2):
        git = get_run_db().read_run(run.uid, iter=it)["status"]["git"]
        assert git == {"repo": "https://example.com/t/ml.git", "commit": "ef" * 20}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_git_commit_of_a_worktree_checkout_and_of_a_submodule_is_recorded(tmp_path):
    def git(*args, cwd=tmp_path / "main"):
        return subprocess.run(["git", "-c", "protocol.file.allow=always", *args], cwd=cwd,
                              check=True, capture_output=True, text=True).stdout.strip()

    (tmp_path / "main").mkdir()
    git("init", "-q", "-b", "main")
    git("remote", "add", "origin", "https://example.com/team/ml.git")
    (tmp_path / "main" / "train.py").write_text("def train(context):\n    return 1\n")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    git("worktree", "add", "-q", "-b", "exp", str(tmp_path / "exp"))
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m",
        "two", cwd=tmp_path / "exp")
    git("pack-refs", "--all")  # the branch's ref now lives in the main repository's packed-refs
    run = new_runner().run(handler=f"{tmp_path / 'exp' / 'train.py'}:train")
    commit = git("rev-parse", "HEAD", cwd=tmp_path / "exp")
    assert commit != git("rev-parse", "HEAD")
    assert run.status.git == {"repo": "https://example.com/team/ml.git", "commit": commit}
    git("init", "-q", "-b", "main", cwd=tmp_path)  # a superproject with main as a submodule
    git("submodule", "add", "-q", str(tmp_path / "main"), "sub", cwd=tmp_path)
    run = new_runner().run(handler=f"{tmp_path / 'sub' / 'train.py'}:train")
    assert run.status.git["commit"] == git("rev-parse", "HEAD", cwd=tmp_path / "sub")


def test_a_secret_logged_as_a_result_is_masked_in_the_returned_run():
    def handler(context):
        context.log_result("leak", context.get_secret("TOKEN"))

    run = _run(handler, new_task().with_secrets("inline", {"TOKEN": "t0p-s3cret"}))
    assert run.results == {"leak": "***"}
    assert "t0p-s3cret" not in run.to_yaml()
    assert get_run_db().read_run(run.uid)["status"]["results"] == {"leak": "***"}


def test_nan_and_infinite_results_and_metrics_are_recorded_as_such(dbdir):
    import math

    def handler(context):
        context.log_result("nan", float("nan"))
        context.log_results({"inf": float("inf"), "series": [float("-inf"), 1.0]})
        context.log_metric("loss", float("nan"))
        context.log_metric("loss", float("inf"))

    run = _run(handler)
    stored = get_run_db().read_run(run.uid, project=run.metadata.project)
    results = stored["status"]["results"]
    assert math.isnan(results["nan"]) and results["inf"] == math.inf
    assert results["series"] == [-math.inf, 1.0] and stored["status"]["metrics"]["loss"] == math.inf
    series = [m["value"] for m in get_run_db().get_metrics(run.uid, "loss")]
    assert math.isnan(series[0]) and series[1] == math.inf


def test_nan_model_metrics_are_recorded_as_such(dbdir):
    import math

    def handler(context):
        context.log_model("m", body=b"w", model_file="m.pkl",
                          metrics={"auc": float("nan"), "loss": float("inf")})

    run = _run(handler)
    record = get_run_db().read_artifact("m", project=run.metadata.project)
    metrics = record["extra"]["metrics"]
    assert math.isnan(metrics["auc"]) and metrics["loss"] == math.inf
