"""A run record's dump without pydantic's serializer, and blank records (issue 18).

``plain_dump`` must give exactly ``model_dump(mode="json")``: the stored text is compared byte
for byte (``db._json.dumps``: key order, ``1`` / ``1.0`` / ``true``, NaN all show in it).
"""

from __future__ import annotations

import enum
import json
import math
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import ConfigDict, Field, PlainSerializer, field_serializer, field_validator

from mlflowlet._rundump import plain_copy, plain_dump
from mlflowlet._runfields import blank
from mlflowlet.db._json import dumps, dumps_run, share
from mlflowlet.model import RunMetadata, RunObject, RunSpec, RunStatus, RunTemplate
from mlflowlet.server._schemas import RunBody


def _record(**extra: Any) -> RunObject:
    run = RunObject()
    meta, spec, status = run.metadata, run.spec, run.status
    meta.uid, meta.name, meta.project, meta.iteration = "a" * 32, "träin ✓", "proj", 3
    meta.labels.update({"kind": "local", "owner": "me", "": ""})
    spec.handler, spec.timeout, spec.strict, spec.seed = "mod:train", 2.5, False, -(2**70)
    spec.params.update({"p1": 1, "p2": 1.0, "p3": True, "p4": None, "p5": [1, [2.5, "x"]]})
    spec.params["p6"] = {"nested": {"deep": [{"a": math.nan}]}, "$float": "NaN"}
    spec.outputs.append("model")
    spec.secret_sources.append({"kind": "env", "source": "A,B"})
    spec.hyper_params["p1"] = [1, 2, 3.5, "four", None, False]
    status.state, status.error = "completed", "line 1\nline \x00 2"
    status.results.update({"inf": math.inf, "ninf": -math.inf, "big": 10**30, "zero": -0.0})
    status.artifacts.append({"key": "model", "uri": "/a/b", "size": 7, "labels": {}})
    status.iterations.extend([["iter", "p1"], [1, 1], [2, math.nan]])
    status.exit_code, status.process = 0, {"host": "h", "pid": 12}
    spec.model_extra.update({"graph": {"steps": [{"name": "a"}]}, "empty": {}})  # type: ignore[union-attr]
    status.model_extra.update({"series": []})  # type: ignore[union-attr]
    run.model_extra.update(extra)  # type: ignore[union-attr]
    return run


def _text(data: Any) -> str:
    return dumps(data)


def test_a_record_of_plain_values_dumps_exactly_as_pydantic():
    for run in (_record(), _record(top={"level": [1.5]}), blank(RunObject), RunTemplate()):
        expected = run.model_dump(mode="json")
        plain = plain_dump(run)
        assert plain is not None
        assert _text(plain) == _text(expected)  # key order, value types and NaNs included
        assert _text(run.to_dict()) == _text(expected)
        assert dumps_run(run.to_dict()) == dumps_run(expected)


def test_a_record_pydantic_refuses_to_dump_is_refused_as_before():
    run = _record()
    loop: list[Any] = []
    loop.append(loop)
    run.status.results["loop"] = loop
    assert plain_dump(run) is None
    with pytest.raises(ValueError, match="Circular reference"):  # pydantic's error, as before
        run.to_dict()


def test_the_dump_is_a_copy_of_the_record():
    run = _record()
    data = plain_dump(run)
    assert data is not None
    data["spec"]["params"]["p5"][1].append("changed")
    data["metadata"]["labels"]["new"] = "x"
    assert run.spec.params["p5"] == [1, [2.5, "x"]]
    assert "new" not in run.metadata.labels


class _Color(enum.IntEnum):
    RED = 1


class _Name(str):
    pass


class _Status(RunStatus):
    pass


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
@pytest.mark.parametrize(
    "change",
    [
        lambda r: setattr(r.spec, "timeout", 5),  # int in a float field: pydantic writes 5.0
        lambda r: setattr(r.metadata, "iteration", True),  # bool in an int field: 1
        lambda r: setattr(r.spec, "strict", 1),  # int in a bool field
        lambda r: setattr(r.metadata, "name", 7),  # int in a str field
        lambda r: setattr(r.metadata, "name", _Name("x")),  # a str subclass
        lambda r: r.metadata.labels.update({"k": 1}),  # int in dict[str, str]
        lambda r: r.spec.outputs.append(2),  # int in list[str]
        lambda r: r.status.results.update({"t": (1, 2)}),  # a tuple: a list in JSON
        lambda r: r.status.results.update({"e": _Color.RED}),  # an enum: its value
        lambda r: r.status.results.update({"d": {1: "one"}}),  # an int key: "1"
        lambda r: r.status.results.update({"s": {1}}),  # a set
        lambda r: r.status.results.update({"b": b"bytes"}),
        lambda r: r.status.results.update({"t": datetime(2020, 1, 1, tzinfo=timezone.utc)}),
        lambda r: r.status.results.update({"p": Path("/x")}),
        lambda r: r.spec.model_extra.update({"x": (1,)}),  # type: ignore[union-attr]
        lambda r: setattr(r, "status", _Status()),  # a subclass of the field's model
        lambda r: setattr(r.spec, "params", _ODict(a=1)),  # a dict subclass
    ],
)
def test_a_value_pydantic_dumps_differently_is_left_to_pydantic(change):
    run = _record()
    change(run)
    assert plain_dump(run) is None
    assert _text(run.to_dict()) == _text(run.model_dump(mode="json"))


class _ODict(dict):
    pass


class _Noted(RunStatus):
    notes: dict[str, Any] | None = None
    sizes: list[int] | None = None


def test_optional_containers_are_checked_inside():
    status = _Noted(notes={"a": [1, {"b": "c"}]}, sizes=[1, 2])
    assert _text(plain_dump(status)) == _text(status.model_dump(mode="json"))
    for notes, sizes in (({"a": (1, 2)}, None), (None, [1, True])):
        status = _Noted(sizes=[1])
        status.notes, status.sizes = notes, sizes
        assert plain_dump(status) is None


def test_models_with_serializers_or_field_metadata_are_left_to_pydantic():
    class Shouting(RunMetadata):
        @field_serializer("name")
        def _upper(self, value: str) -> str:
            return value.upper()

    class Marked(RunMetadata):
        tag: Annotated[str, PlainSerializer(lambda value: value + "!")] = ""

    for meta in (Shouting(name="quiet"), Marked(tag="v1")):
        assert plain_dump(meta) is None
    body = RunBody.model_validate(_record().model_dump(mode="json"))
    assert plain_dump(body) is None
    assert _text(body.to_dict()) == _text(body.model_dump(mode="json"))


def test_a_shared_spec_extra_is_put_in_as_given_not_dumped_again():
    run = _record()
    graph = {"steps": [{"name": "a", "inputs": [1, 2]}]}
    jsonable = share({"steps": [{"name": "a", "inputs": [1, 2]}]})
    run._share_extra("graph", graph, jsonable)
    data = run.to_dict()
    assert data["spec"]["graph"] is jsonable
    assert list(data["spec"]) == list(run.model_dump(mode="json")["spec"])
    assert _text(data) == _text(run.model_dump(mode="json"))
    run.spec.model_extra["graph"] = {"steps": []}  # type: ignore[index]  # no longer shared
    assert run.to_dict()["spec"]["graph"] == {"steps": []}


@pytest.mark.parametrize("cls", [RunMetadata, RunSpec, RunStatus, RunTemplate, RunObject])
def test_a_blank_record_is_the_default_record(cls):
    made, built = blank(cls), cls()
    assert type(made) is cls
    assert made == built  # fields, extras and private attributes
    assert made.model_fields_set == built.model_fields_set == set()
    assert made.model_extra == built.model_extra == {}
    assert made.__pydantic_private__ == built.__pydantic_private__
    assert _text(plain_dump(made)) == _text(built.model_dump(mode="json"))


class _Derived(RunMetadata):
    tag: str = Field(default_factory=lambda data: data["name"] + "-tag")
    notes: list[str] = Field(default_factory=lambda *args: list(args))


def test_a_blank_record_passes_the_validated_data_to_a_factory_that_takes_it():
    made, built = blank(_Derived), _Derived()
    assert made == built and made.tag == "-tag" and made.notes == []


def test_blank_records_share_no_container():
    one, two = blank(RunObject), blank(RunObject)
    one.metadata.labels["a"] = "1"
    one.status.artifacts.append({"key": "x"})
    one._shared_extra["g"] = (1, 1)
    assert two.metadata.labels == {} and two.status.artifacts == []
    assert two._shared_extra == {}
    assert one.metadata is not two.metadata


FIRST_RUN = """
import json, sys
if sys.argv[1] == "nolock":  # a pydantic whose deferred builds are not thread-safe (< 2.14)
    import pydantic.main
    del pydantic.main._rebuild_lock
import mlflowlet
from mlflowlet.db._json import dumps_run
from mlflowlet.model import RunObject

def train(context, p1: int = 1):
    context.log_result("accuracy", p1 * 2.5)
    context.set_label("framework", "sklearn")
    context.log_artifact("model.txt", body=b"weights")

if sys.argv[1] in ("handler", "nolock"):
    run = mlflowlet.new_runner().run(handler=train, params={"p1": 2})
elif sys.argv[1] == "task":
    run = mlflowlet.new_runner().run(mlflowlet.new_task(handler=train, labels={"a": "b"}))
else:
    ctx = mlflowlet.get_or_create_ctx("script")
    train(ctx)
    ctx.commit(completed=True)
    run = ctx.to_run_object()
built = [c.__name__ for c in RunObject.__mro__ if getattr(c, "__pydantic_complete__", False)]
db = mlflowlet.get_run_db()
(stored,), = db._read("SELECT body FROM runs WHERE uid=?", (run.uid,))
print(json.dumps({"state": run.state, "built": built,
                  "plugins": "pydantic.plugin._loader" in sys.modules,
                  "same": stored == dumps_run(run.model_dump(mode="json"))}))
"""


@pytest.mark.parametrize("how", ["handler", "task", "script", "nolock"])
def test_a_plain_tracked_run_builds_no_validator_and_stores_pydantics_text(tmp_path, how):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
    env["MLFLOWLET_DBPATH"] = str(tmp_path)
    code = textwrap.dedent(FIRST_RUN)
    out = subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    state = "running" if how == "script" else "completed"
    if how == "nolock":  # the models are built when defined, as before issue 18
        assert found["state"] == state and found["same"] and "RunObject" in found["built"]
        return
    assert found == {"state": state, "built": [], "plugins": False, "same": True}


def _state(model: Any) -> Any:
    """Everything validation decides about a record: dump text, fields set, extras, privates."""
    nested = {k: _state(v) for k, v in model.__dict__.items() if hasattr(v, "model_fields_set")}
    return (_text(model.model_dump(mode="json")), sorted(model.model_fields_set),
            model.model_extra, model.__pydantic_private__, nested)


def _task() -> RunTemplate:
    task = RunTemplate.model_validate(_record(top={"x": [1.5]}).model_dump(exclude={"status"}))
    task.spec.model_extra["graph"] = {"steps": [math.inf]}  # type: ignore[index]
    return task


@pytest.mark.parametrize("source", [_task, _record, lambda: blank(RunTemplate)])
def test_a_plain_copy_is_what_validating_the_dump_gives(source):
    task = source()
    copied = plain_copy(task, RunObject, frozenset({"status"}))
    validated = RunObject.model_validate(task.model_dump(exclude={"status"}))
    assert copied is not None and type(copied) is RunObject
    assert _state(copied) == _state(validated)
    copied.spec.params["p5"] = "changed"
    copied.spec.model_extra["new"] = 1  # type: ignore[index]
    copied.metadata.labels["new"] = "1"
    assert task.spec.params.get("p5") != "changed" and "new" not in task.spec.model_extra
    assert "new" not in task.metadata.labels


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
@pytest.mark.parametrize(
    "change",
    [
        lambda t: setattr(t.spec, "timeout", 5),  # validation makes it 5.0
        lambda t: setattr(t.spec, "params", "not a dict"),  # validation refuses it
        lambda t: t.model_extra.update({"_db": "private?"}),  # type: ignore[union-attr]
        lambda t: t.status.results.update({"t": (1,)}),
    ],
)
def test_a_task_that_is_not_plain_is_validated(change):
    task = _record()
    change(task)
    assert plain_copy(task, RunObject, frozenset({"status"})) is None
    assert plain_copy(task, RunBody) is None  # a strict model is always validated


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
class _IntSpec(RunSpec):
    timeout: int | None = None  # type: ignore[assignment]


class _IntTask(RunTemplate):
    spec: _IntSpec = Field(default_factory=_IntSpec)  # type: ignore[assignment]


class _Stripping(RunObject):
    model_config = ConfigDict(str_strip_whitespace=True)


class _Checked(RunObject):
    @field_validator("kind")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


def test_a_copy_into_other_declared_types_or_validators_is_validated():
    task = _IntTask()
    task.spec.timeout = 5  # plain for _IntSpec, but RunSpec's float field makes it 5.0
    assert plain_dump(task) is not None
    assert plain_copy(task, RunObject) is None
    assert RunObject.model_validate(task.model_dump()).spec.timeout == 5.0
    task = blank(RunTemplate)
    task.kind = " run "
    for cls in (_Stripping, _Checked):
        assert plain_copy(task, cls) is None
        assert cls.model_validate(task.model_dump()).kind != " run "


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_running_a_task_still_validates_and_converts_it(dbdir):
    from pydantic import ValidationError

    from mlflowlet import new_runner, new_task

    def train(context, p1: int = 1):
        context.log_result("p1", p1)

    task = new_task(handler=train, params={"p1": 2})
    task.spec.timeout = 30  # an int: the run's record holds the float validation makes of it
    run = new_runner().run(task)
    assert run.state == "completed" and type(run.spec.timeout) is float and run.spec.timeout == 30
    task.spec.inputs = ["not", "a", "dict"]  # type: ignore[assignment]
    with pytest.raises(ValidationError):
        new_runner().run(task)
