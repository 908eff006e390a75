"""A step pickled by value never carries a credential into the compiled workflow."""

import os
import subprocess
import sys
import textwrap

import pytest

from mlflowlet.compilers import compile, compile_text
from mlflowlet.errors import CompileError
from mlflowlet.pipelines import pipeline, step

IMAGE = "example.com/team/steps:1.0"
API_TOKEN = "tok-0123456789abcdef"  # a module global: a nested step captures it by value
GET_TOKEN_URL = "https://auth.example.com/token"  # credential-named too
SECRET_VALUE = "hf_abcdefghijklmnopqrstuvwxyz"
TOKENIZER_NAME = "bert-base-uncased"  # names like a credential's, but none
MAX_TOKENS = "512"


def _pipe(handler):
    """A pipeline of one nested (pickled) step running ``handler``."""
    use = step(handler)

    @pipeline(image=IMAGE)
    def p():
        use()

    return p


@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_a_step_capturing_a_credential_named_global_is_refused(target):
    def use() -> int:
        return len(API_TOKEN)

    with pytest.raises(CompileError) as err:
        compile(_pipe(use), target)
    msg = str(err.value)
    assert "step 'use'" in msg and "global 'API_TOKEN'" in msg and "context.get_secret" in msg
    assert API_TOKEN not in msg


def test_a_step_capturing_a_credential_named_closure_variable_is_refused():
    db_password = "pw-0123456789"

    def use() -> int:
        return len(db_password)

    with pytest.raises(CompileError, match=r"step 'use'.* global 'db_password', named as a"):
        compile(_pipe(use), "argo")


def _captures(how):
    hub = os.environ["HF_TOKEN"]  # a plain name: only its value tells
    config = {"auth": [f"Bearer {os.environ['HF_TOKEN']}"]}

    def plain() -> int:
        return len(hub)

    def nested() -> int:
        return len(config)

    def default(token=os.environ["HF_TOKEN"]) -> int:
        return len(token)

    return {"plain": plain, "nested": nested, "default": default}[how]


@pytest.mark.parametrize(
    "how, held",
    [("plain", "global 'hub'"), ("nested", "global 'config'"), ("default", "a value it captures")],
)
def test_a_step_capturing_the_value_of_a_credential_env_var_is_refused(how, held, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET_VALUE)
    with pytest.raises(CompileError) as err:
        compile(_pipe(_captures(how)), "kfp")
    msg = str(err.value)
    assert (
        f"step '{how}': its handler captures {held}, holding the value of environment "
        "variable 'HF_TOKEN'" in msg
    )
    assert SECRET_VALUE not in msg


def test_what_holds_no_credential_compiles(monkeypatch):
    monkeypatch.setenv("SOME_TOKEN_ENABLED", "true")  # too short to be searched
    monkeypatch.setenv("OTHER_API_KEY", SECRET_VALUE)  # never captured
    mode = "true"

    def get_token() -> str:  # a credential-named function: no value in it
        return "x"

    def use() -> str:
        return mode + get_token() + GET_TOKEN_URL.split(":")[0]

    with pytest.raises(CompileError, match="global 'GET_TOKEN_URL'"):  # the rule is the name's
        compile(_pipe(use), "argo")

    def use2() -> str:
        return mode + get_token()

    assert SECRET_VALUE not in compile_text(_pipe(use2), "argo")

    def use3() -> str:  # a tokenizer is no token
        return TOKENIZER_NAME + MAX_TOKENS

    assert "name: use3" in compile_text(_pipe(use3), "argo")  # compiled, not refused


SCRIPT = """
import os
from mlflowlet.compilers import compile
from mlflowlet.pipelines import pipeline, step

HF = os.environ["HF_TOKEN"]

@step
def download() -> int:
    return len(HF)

@pipeline(image="example.com/team/steps:1.0")
def fetch():
    download()

if __name__ == "__main__":
    compile(fetch, target="argo", output="fetch.yaml")
"""


def test_a_main_script_step_reading_a_secret_at_module_top_is_refused(tmp_path):
    (tmp_path / "pipe.py").write_text(textwrap.dedent(SCRIPT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
    env.update(TMPDIR=str(tmp_path), HF_TOKEN=SECRET_VALUE, MLFLOWLET_DBPATH=str(tmp_path / "d"))
    proc = subprocess.run(
        [sys.executable, "pipe.py"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "step 'download'" in proc.stderr and "global 'HF'" in proc.stderr
    assert "'HF_TOKEN'" in proc.stderr and SECRET_VALUE not in proc.stderr
    assert not (tmp_path / "fetch.yaml").exists()


def test_a_container_holding_itself_and_the_secret_is_named(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET_VALUE)
    loop: dict = {"a": None, "b": None}
    loop["a"] = loop["b"] = loop
    cfg = [loop, {"k": [os.environ["HF_TOKEN"]]}]

    def use() -> int:
        return len(cfg)

    with pytest.raises(CompileError, match="captures global 'cfg', holding the value of"):
        compile(_pipe(use), "argo")


def test_without_cloudpickles_own_rule_a_nested_step_is_still_checked(monkeypatch):
    from cloudpickle import cloudpickle as impl

    monkeypatch.delattr(impl, "_should_pickle_by_reference")

    def use() -> int:
        return len(API_TOKEN)

    from mlflowlet._pickled import _by_reference

    assert _by_reference(use) is False and _by_reference(os.path.join) is True
