"""``on_exit(step, **arguments)``: an exit step given pipeline parameters and literals."""

import pytest

from mlflowlet import on_exit, pipeline, step
from mlflowlet.errors import PipelineError, StepDefinitionError


@step
def work(fail: bool = False) -> int:
    if fail:
        raise RuntimeError("work failed")
    return 1


@step
def exit_op(user_input: str, state: str, times: int = 1) -> str:
    return f"{user_input} x{times}: {state}"


@pipeline
def notified(message: str = "hi", fail: bool = False):
    work(fail=fail)
    on_exit(exit_op, user_input=message, times=3)


@pytest.mark.parametrize(("fail", "state"), [(False, "completed"), (True, "error")])
def test_the_exit_step_gets_its_arguments_and_the_final_state(dbdir, fail, state):
    run = notified.run(message="bye", fail=fail)
    assert run.state == state
    exit_run = run.steps["exit_op"]
    assert exit_run.state == "completed"
    assert exit_run.results["return"] == f"bye x3: {state}"
    assert exit_run.spec.params == {"user_input": "bye", "times": 3, "state": state}


def test_bad_exit_arguments_are_refused(dbdir):
    @pipeline
    def outputs_passed():
        w = work()
        on_exit(exit_op, user_input=w.output)

    with pytest.raises(PipelineError, match=r"passes step outputs to \['user_input'\]; an exit"):
        outputs_passed.run()

    @pipeline
    def missing():
        work()
        on_exit(exit_op)

    with pytest.raises(StepDefinitionError, match=r"on_exit step parameters \['user_input'\]"):
        missing.run()

    @pipeline
    def twice(message: str = "x"):
        on_exit(exit_op, user_input=message)
        on_exit(exit_op, user_input=message)

    @step
    def plain_exit(state: str) -> str:
        return state

    @pipeline(on_exit=plain_exit)
    def both(message: str = "x"):
        on_exit(exit_op, user_input=message)

    for pipe in (twice, both):
        with pytest.raises(PipelineError, match=r"already has an exit step"):
            pipe.run()

    @pipeline
    def with_state(message: str = "x"):
        on_exit(exit_op, user_input=message, state="completed")

    with pytest.raises(PipelineError, match=r"sets 'state' itself"):
        with_state.run()

    @step
    def counts(state: str, failures: list) -> int:
        return len(failures)

    @pipeline
    def with_failures():
        on_exit(counts, failures=[])

    with pytest.raises(PipelineError, match=r"sets 'failures' itself"):
        with_failures.run()

    with pytest.raises(PipelineError, match=r"inside a @pipeline function only"):
        on_exit(exit_op, user_input="x")


def test_on_exit_inside_a_condition_block_is_refused(dbdir):
    from mlflowlet import condition

    @pipeline
    def gated(message: str = "x", send: bool = True):
        work()
        with condition(send == True):  # noqa: E712
            on_exit(exit_op, user_input=message)

    with pytest.raises(PipelineError, match=r"on_exit\(\.\.\.\) inside `with condition"):
        gated.run()


def test_an_exit_step_taking_failures_gets_the_failed_steps_names(dbdir):
    @step
    def report(state: str, failures: list) -> str:
        return f"{state}:{failures}"

    @pipeline(on_exit=report)
    def flaky(fail: bool = True):
        work.with_options(name="b-step")(fail=fail)
        work.with_options(name="a-step")(fail=fail)
        work.with_options(name="ok")()

    assert flaky.run().steps["report"].results["return"] == "error:['a-step', 'b-step']"
    assert flaky.run(fail=False).steps["report"].results["return"] == "completed:[]"
