"""Values between steps keep their type, or the step that would change them fails naming them."""

import pytest

from mlflowlet import get_run_db, pipeline, step
from mlflowlet.compilers import compile
from mlflowlet.errors import PipelineError


@step
def produce(context, k: str = "") -> object:
    return {"bytes": b"x", "set": {1}, "complex": 1j, "tuple": (1, (2, 3))}[k]


@step
def consume(context, v=None):
    context.log_result("got", repr(v))


@pipeline(name="values")
def values(k: str = ""):
    consume(v=produce(k=k).output)


@pytest.mark.parametrize(("k", "shown"), [("bytes", "b'x' (bytes)"), ("set", "{1} (set)"),
                                          ("complex", "1j (complex)")])
def test_a_returned_value_without_json_form_fails_its_step_and_never_flows_on(k, shown):
    # the consumer received the text "b'x'" and the pipeline completed
    run = values.run(k=k)
    producer = run.steps["produce"]
    assert run.state == "error" and producer.state == "error"
    assert f"result 'return': {shown}" in producer.status.error
    assert run.steps["consume"].state == "skipped"
    assert get_run_db().read_run(producer.uid)["status"]["results"] == {}


def test_a_returned_tuple_flows_on_as_the_list_it_is_recorded_as():
    run = values.run(k="tuple")
    assert run.state == "completed"
    assert run.steps["produce"].status.results == {"return": [1, [2, 3]]}
    assert run.steps["consume"].status.results == {"got": "[1, [2, 3]]"}


@step
def config(context) -> dict:
    return {"a": 1, "b": 2}


@step
def use(context, cfg: dict | None = None, a: int = 0):
    context.log_result("got", [cfg, a])


def test_the_return_of_a_step_annotated_dict_is_refused_before_any_run_or_compile():
    # -> dict logs one result per key: results['return'] failed the local run and compiled
    @pipeline(name="dictret")
    def dictret():
        use(cfg=config().results["return"])

    for attempt in (dictret.run, lambda: compile(dictret, "argo"), lambda: compile(dictret, "kfp")):
        with pytest.raises(PipelineError, match=r"step 'config' returns a dict \(-> dict\)"):
            attempt()
    assert get_run_db().list_runs() == []

    @pipeline(name="dictkey")
    def dictkey():
        use(a=config().results["a"])

    assert dictkey.run().steps["use"].status.results == {"got": [None, 1]}


def test_a_step_argument_whose_keys_collide_as_json_is_refused_at_trace_time():
    # {1: 'a', '1': 'b'} passed json.dumps and was recorded {'1': 'b'}
    @pipeline(name="keys")
    def keys():
        consume(v={1: "a", "1": "b"})

    with pytest.raises(PipelineError, match="dict keys 1 and '1' both become JSON key '1'"):
        keys.run()
