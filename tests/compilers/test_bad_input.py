"""What a target cannot carry is refused at compile time with what and why (issue 12)."""

import fidelity_pipelines as fp
import pytest

from mlflowlet.compilers import compile
from mlflowlet.compilers._types import engine_arguments
from mlflowlet.errors import CompileError
from mlflowlet.pipelines import condition, pipeline

TARGETS = ["argo", "kfp"]


def _gated(make_condition, **defaults):
    """A pipeline whose one block's condition is ``make_condition(flip node, params)``."""
    def body(mode: str = "a", limit: float = 0.5, flag: bool = True, opts: dict = {}):  # noqa: B006
        f = fp.flip()
        with condition(make_condition(f, locals())):
            fp.make(x=1)

    return pipeline(image=fp.IMAGE, name="gated")(body)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("make", "message"), [
    (lambda f, p: f.output == [1], r"compares \[1\] \(list\), which \w+ cannot compare"),
    (lambda f, p: f.output == None, r"compares None \(NoneType\)"),  # noqa: E711
    (lambda f, p: p["opts"] == "x", r"compares pipeline parameter 'opts' of type json"),
    (lambda f, p: p["mode"] == 1, r"compares parameter 'mode' \(str\) with 1 \(number\)"),
    (lambda f, p: p["limit"] == "0.5", r"compares parameter 'limit' \(number\) with '0.5'"),
    (lambda f, p: p["flag"] > False, r"orders booleans"),
    (lambda f, p: p["flag"] == 1, r"compares parameter 'flag' \(bool\) with 1 \(number\)"),
])
def test_a_condition_the_target_cannot_compare_is_refused(target, make, message):
    with pytest.raises(CompileError, match=message):
        compile(_gated(make), target)


def test_a_declared_return_type_types_a_result_operand():
    flipped = _gated(lambda f, p: f.output == fp.flip(side="x").output)  # -> str twice
    assert compile(flipped, "kfp")["pipelineInfo"]["name"] == "gated"
    with pytest.raises(CompileError, match=r"compares result .* \(str\) with 1 \(number\)"):
        compile(_gated(lambda f, p: f.output > 1), "argo")


def test_kfp_refuses_what_its_condition_language_cannot_quote_or_type():
    with pytest.raises(CompileError, match="holds a quote, backslash or newline"):
        compile(_gated(lambda f, p: f.output == "it's"), "kfp")
    assert compile(_gated(lambda f, p: f.output == "it's"), "argo")["kind"] == "Workflow"
    both = _gated(lambda f, p: fp.make(x=3).results["v"] == fp.make(x=2).results["v"])
    with pytest.raises(CompileError, match="compares two results, whose types KFP must know"):
        compile(both, "kfp")
    assert compile(both, "argo")["kind"] == "Workflow"


@pytest.mark.parametrize("target", TARGETS)
def test_two_results_one_name_once_sanitised_are_refused(target):
    # "a.b" and "a-b" were one Argo output (one file): a consumer of one read the other's value
    @pipeline(image=fp.IMAGE)
    def twins():
        made = fp.make(x=0)
        fp.echo(value=made.results["a.b"])
        fp.echo.with_options(name="echo2")(value=made.results["a-b"])

    with pytest.raises(CompileError, match=r"'a-b' and 'a\.b'|both 'a_b'"):
        compile(twins, target)


@pytest.mark.parametrize("target", TARGETS)
def test_a_result_compared_as_two_types_is_refused_for_kfp_only(target):
    @pipeline(image=fp.IMAGE)
    def twice():
        v = fp.make(x=0).results["v"]  # a result of no declared type
        with condition(v == "heads"):
            fp.make(x=1)
        with condition(v > 1):
            fp.make(x=2)

    if target == "kfp":
        with pytest.raises(CompileError, match="compared as str in one condition and as float"):
            compile(twice, target)
    else:  # govaluate compares the runtime value as Python would (or fails, as Python does)
        assert compile(twice, target)["kind"] == "Workflow"


@pytest.mark.parametrize("target", TARGETS)
def test_parameters_the_target_cannot_carry_exactly_are_refused(target):
    @pipeline(image=fp.IMAGE)
    def untyped(x):
        fp.echo(value=x)

    with pytest.raises(CompileError, match="'x' has no type annotation and no default"):
        compile(untyped, target)

    @pipeline(image=fp.IMAGE)
    def wrong_default(x: int = "abc"):  # type: ignore[assignment]
        fp.echo(value=x)

    with pytest.raises(CompileError, match="'x' is declared int but its default is 'abc'"):
        compile(wrong_default, target)

    @pipeline(image=fp.IMAGE)
    def bare_items(xs: list = [1, 2]):  # noqa: B006
        fp.halve.map(items=xs, item_param="x")

    with pytest.raises(CompileError, match="maps over a pipeline parameter of type json; declare"):
        compile(bare_items, target)


@pipeline(image=fp.IMAGE)
def as_object(a: object = 1):
    fp.echo(value=a)


@pipeline(image=fp.IMAGE)
def unannotated(a=1):
    fp.echo(value=a)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("pipe", "value", "kind"), [
    (as_object, "1", "str"), (as_object, -0.0, "float"), (unannotated, True, "bool"),
    (as_object, 2, "int"), (unannotated, 3, "int"),
])
def test_an_argument_of_another_type_than_an_undeclared_default_is_refused(
    target, pipe, value, kind
):
    # carried as its default's type (int), "1" came back as the int 1 (locally the str "1")
    if kind == "int":  # the default's own type: carried exactly
        assert engine_arguments(pipe.dag, {"a": value}, target)["a"] in (value, str(value))
        return
    with pytest.raises(CompileError, match=rf"'a' has no declared type, so the compiled pipeline "
                                           rf"carries it as int .* \({kind}\); pass a int"):
        engine_arguments(pipe.dag, {"a": value}, target)


def test_kfp_refuses_an_integer_it_would_round():
    @pipeline(image=fp.IMAGE)
    def big(n: int = 2**60):
        fp.echo(value=n)

    with pytest.raises(CompileError, match="defaults to 1152921504606846976, which KFP cannot"):
        compile(big, "kfp")
    assert compile(big, "argo")["spec"]["arguments"]["parameters"][0]["value"] == str(2**60)


@pytest.mark.parametrize("target", TARGETS)
def test_an_empty_literal_map_is_refused(target):
    @pipeline(image=fp.IMAGE)
    def nothing():
        fp.halve.map(items=[], item_param="x")

    with pytest.raises(CompileError, match="maps over an empty literal list"):
        compile(nothing, target)


@pytest.mark.parametrize("target", TARGETS)
def test_resources_that_are_no_kubernetes_quantity_are_refused(target):
    @pipeline(image=fp.IMAGE)
    def hungry():
        fp.make.with_options(resources={"cpu": "lots"})(x=1)

    with pytest.raises(CompileError, match=r"step 'make' \(.*\): resources cpu='lots' is not a "
                                           "Kubernetes quantity"):
        compile(hungry, target)


def test_what_only_kfp_refuses_is_a_compile_error_naming_the_step():
    @pipeline(image=fp.IMAGE)
    def exponent():  # Kubernetes reads 1e3 CPUs; kfp's cpu format does not
        fp.make.with_options(resources={"cpu": "1e3"})(x=1)

    assert compile(exponent, "argo")["kind"] == "Workflow"
    with pytest.raises(CompileError, match=r"step 'make' \(.*\): KFP cannot carry its options: "
                                           "Invalid cpu string"):
        compile(exponent, "kfp")


def test_errors_raised_inside_kfp_are_wrapped_naming_the_pipeline(monkeypatch):
    from kfp.dsl.types import type_utils

    original = type_utils.verify_type_compatibility

    def strict(given_value, expected_spec, **kwargs):  # kfp itself finds a mismatch
        from kfp.dsl import structures

        return original(given_value, structures.InputSpec(type="system.Model@0.0.1"), **kwargs)

    monkeypatch.setattr(type_utils, "verify_type_compatibility", strict)
    with pytest.raises(CompileError, match="kfp cannot compile pipeline 'typed-values': "
                                           "InconsistentTypeException: "):
        compile(fp.typed_values, "kfp")


@pytest.mark.parametrize("target", TARGETS)
def test_an_error_raised_while_tracing_is_not_taken_for_a_non_pipeline(target):
    @pipeline(image=fp.IMAGE, name="typo")
    def typo():
        node = fp.make(x=1)
        fp.use(v=node.outptus)  # a typo: AttributeError while tracing, not "not a @pipeline"

    with pytest.raises(AttributeError, match="outptus"):
        compile(typo, target)


def test_load_pipeline_refuses_what_is_no_pipeline_and_names_it():
    from mlflowlet.compilers import load_pipeline

    with pytest.raises(CompileError, match=r"is a function, not a @pipeline"):
        load_pipeline("json:dumps")


def test_a_kfp_list_parameter_holding_a_brace_pair_is_refused_naming_it():
    @pipeline(image=fp.IMAGE, name="tagged")
    def tagged(tags: list[str] = ["{{workflow.name}}"]):  # noqa: B006
        fp.echo(value=tags)

    assert "{{workflow.name}}" not in str(compile(tagged, "argo"))  # Argo takes it as JSON text
    with pytest.raises(CompileError, match=r"pipeline parameter 'tags' \(list\[str\]\) holds "
                                           r"'\{\{', which KFP's launcher would replace"):
        compile(tagged, "kfp")
    with pytest.raises(CompileError, match=r"pipeline parameter 'tags'"):
        engine_arguments(tagged.dag, {"tags": ["a{{b}}"]}, "kfp")
    assert engine_arguments(tagged.dag, {"tags": ["a{b}"]}, "kfp") == {"tags": ["a{b}"]}
