"""Project names, run names and artifact keys are checked before they become paths."""

from __future__ import annotations

import os

import pytest

from mlflowlet import Context, get_or_create_ctx, get_run_db, new_runner, new_task
from mlflowlet._names import check_project, check_run_name
from mlflowlet.errors import ArtifactError, ConfigError, InvalidNameError, PathTraversalError
from mlflowlet.model import RunObject

HOSTILE = ["../../x", "a/b", "a\\b", "a\x00b", "\x1b[31mred", "..", "."]


def _tree(root) -> set[str]:
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}


@pytest.mark.parametrize(
    "name", [*HOSTILE, "Upper", "under_score", "-lead", "trail-", "", "a" * 64, "spa ce", "dot.ted"]
)
def test_a_project_name_must_be_a_dns1123_label(name):
    with pytest.raises(InvalidNameError) as info:
        check_project(name)
    message = str(info.value)
    assert repr(name) in message and "DNS-1123" in message and "\n" not in message
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", ["default", "p", "my-project-2", "a" * 63, "0x"])
def test_valid_project_names_pass(name):
    assert check_project(name) == name


@pytest.mark.parametrize("name", HOSTILE + ["tab\there", "bell\x07", "c1\x9b"])
def test_a_run_name_without_separators_or_control_characters(name):
    with pytest.raises(InvalidNameError) as info:
        check_run_name(name)
    assert repr(name) in str(info.value) and "\n" not in str(info.value)


def test_a_run_name_a_name_filter_cannot_select_exactly_is_refused():
    # a run named '~a' could only be deleted with `del runs --name ~a`, which means "contains a"
    with pytest.raises(InvalidNameError, match=r"run name '~a' starts with '~'.*use 'a'"):
        new_runner().run(handler=lambda context: 1, name="~a")
    with pytest.raises(InvalidNameError, match="run name"):
        get_or_create_ctx("~a")
    assert get_run_db().list_runs(iter=True) == []
    assert check_run_name("a~") == "a~"


@pytest.mark.parametrize("name", ["train", "<lambda>", "Train Model v1.2", "a..b", "étude"])
def test_ordinary_run_names_pass(name):
    assert check_run_name(name) == name


@pytest.mark.parametrize("project", HOSTILE[:5])
def test_a_hostile_project_writes_nothing_anywhere(tmp_path, project):
    before = _tree(tmp_path)

    def handler(context):
        context.log_artifact("model.txt", body=b"weights")

    with pytest.raises(InvalidNameError, match="project name"):
        new_runner().run(handler=handler, project=project)
    with pytest.raises(InvalidNameError, match="project name"):
        new_task(project=project)
    with pytest.raises(InvalidNameError, match="project name"):
        get_or_create_ctx("train", project=project)
    assert _tree(tmp_path) - before <= {str(p) for p in tmp_path.rglob("mlflowlet.db*")}
    assert len(get_run_db().list_runs(iter=True)) == 0


@pytest.mark.parametrize("name", HOSTILE[:5])
def test_a_hostile_run_name_is_refused_before_anything_is_stored(name):
    with pytest.raises(InvalidNameError, match="run name"):
        new_runner().run(handler=lambda context: 1, name=name)
    with pytest.raises(InvalidNameError, match="run name"):
        new_task(name=name)
    with pytest.raises(InvalidNameError, match="run name"):
        get_or_create_ctx(name)
    assert len(get_run_db().list_runs(iter=True)) == 0


@pytest.mark.parametrize("key", ["../../x", "a/b", "a\x00b", "\x1b[31mred"])
def test_a_hostile_artifact_key_fails_the_run_naming_it_and_writes_nothing(tmp_path, key):
    def handler(context):
        context.log_artifact(key, body=b"escaped?")

    run = new_runner().run(handler=handler, raise_on_error=False)
    assert run.state == "error" and repr(key) in run.status.error
    written = [p for p in _tree(tmp_path.parent) if "mlflowlet.db" not in p]  # the traceback
    assert not [p for p in written if b"escaped?" in open(p, "rb").read()]  # quotes the code


def test_a_spec_from_outside_with_a_hostile_project_or_uid_cannot_leave_the_root(tmp_path):
    for meta in ({"project": "../../x"}, {"project": "p", "uid": "../../../y"}):
        run = RunObject.model_validate({"metadata": {"name": "n", "uid": "u1", **meta}})
        ctx = Context(run, get_run_db())
        with pytest.raises(InvalidNameError):
            ctx.log_artifact("model.txt", body=b"escaped?")
    assert not (tmp_path.parent / "x").exists() and not (tmp_path.parent.parent / "y").exists()


def test_path_traversal_error_still_names_the_path():
    with pytest.raises(PathTraversalError, match="'a/b'"):
        from mlflowlet.artifacts import validate_key

        validate_key("a/b")


@pytest.mark.parametrize("key", ["k~", "k!", "k=a", " k", "k ", "", "a\nb"])
def test_a_label_key_no_filter_could_select_exactly_is_refused_everywhere(key):
    # `del runs -l 'k~=v'` means "k contains v": a label `k~` set to `v` would be unreachable
    # (and the filter would select other runs), so such keys never reach the DB
    with get_or_create_ctx("kept") as ctx:
        ctx.set_label("k", "=v")  # a value may hold any filter operator
        with pytest.raises(InvalidNameError, match="label key"):
            ctx.set_label(key, "v")
    with pytest.raises(InvalidNameError, match="label key"):
        new_runner().run(handler=lambda context: 1, labels={key: "v"})
    with pytest.raises(InvalidNameError, match="label key"):
        new_task().set_label(key, "v")
    with pytest.raises(InvalidNameError, match="label key"):
        get_or_create_ctx("n", spec={"metadata": {"name": "n", "labels": {key: "v"}}})
    runs = get_run_db().list_runs(iter=True)
    assert [run["metadata"]["labels"] for run in runs] == [{"k": "=v"}]


@pytest.mark.parametrize("where", ["key", "target_path"])
def test_a_name_too_long_for_a_file_is_refused_naming_the_limit(tmp_path, where):
    # a 250-byte key used to surface as a raw OSError (ENAMETOOLONG) from the temporary file
    name = "é" * 123 + ".txt"  # 250 UTF-8 bytes in 127 characters
    kw = {"key": name} if where == "key" else {"key": "m.txt", "target_path": f"sub/{name}"}
    with get_or_create_ctx("long") as ctx:
        with pytest.raises(ArtifactError, match=r"is 250 bytes long.*at most 200") as info:
            ctx.log_artifact(kw.pop("key"), body=b"x", **kw)
        assert "\n" not in str(info.value)
        ctx.log_artifact("e" * 196 + ".txt", body=b"fits")  # 200 bytes: still a file name
    assert ctx._run.status.artifacts[0]["size"] == 4


@pytest.mark.parametrize("tag", ["*", " * ", "a/b", "v1@x", "t\x1b[0m"])
def test_an_artifact_tag_no_lookup_could_reach_is_refused_before_writing(tmp_path, tag):
    # tag='*' was stored, though list_artifacts(tag='*') means "every tag" and a store:// ref
    # splits at '/' and '@': the version was unreachable by its own tag
    with get_or_create_ctx("tags") as ctx:
        with pytest.raises(ArtifactError, match="artifact tag"):
            ctx.log_artifact("m.txt", body=b"tagged?", tag=tag)
        ctx.log_artifact("m.txt", body=b"v1", tag="v1.0")
    assert [a["tags"] for a in get_run_db().list_artifacts("m.txt", tag="*")] == [
        ["latest", "v1.0"]
    ]
    written = [p for p in _tree(tmp_path) if p.endswith("m.txt")]
    assert [open(p, "rb").read() for p in written] == [b"v1"]
