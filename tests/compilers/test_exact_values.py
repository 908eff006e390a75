"""A compiled run passes every value exactly as the local run did (checked by check())."""

import exact_pipelines as ep
import pytest

from mlflowlet.compilers.check import check

pytestmark = pytest.mark.slow
TARGETS = ["argo", "kfp"]


@pytest.mark.parametrize("target", TARGETS)
def test_a_float_parameter_given_an_int_default_is_that_float_locally_and_compiled(
    target, tmp_path
):
    assert ep.float_default.resolve_params({}) == {"lr": 1.0}
    assert type(ep.float_default.resolve_params({})["lr"]) is float
    report = check(ep.float_default, target, workdir=str(tmp_path))
    assert report.ok, report.summary()
    assert report.pods[0].results == {"return": "float:1.0"}
