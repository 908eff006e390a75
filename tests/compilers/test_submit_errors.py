"""Submitting to a host that is down, refuses us, or is not the engine: one line, host and cause.

The servers are recording fakes on 127.0.0.1 (``test_submit.FakeServer``); nothing leaves the
machine. A closed port stands for a host that is down.
"""

import socket
import time

import compiler_pipelines as cp
import pytest
from test_submit import FakeServer

from mlflowlet.cli import main
from mlflowlet.compilers.submit import submit
from mlflowlet.errors import ConfigError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed when the block ends: nothing listens there


def unauthorised(method, path, body):
    return 401, {"error": "Unauthorized", "message": "Jwt is missing", "code": 16}


class Html(FakeServer):
    """A login page in front of the engine: 200, HTML."""

    def __init__(self):
        super().__init__(lambda *a: (200, "<html>sign in</html>"))


@pytest.mark.parametrize("target", ["kfp", "argo"])
def test_a_host_that_is_down_is_one_line_naming_it(target):
    host = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        submit(cp.diamond, target, host=host)
    message = str(err.value)
    assert "\n" not in message and host in message and "Connection refused" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert time.monotonic() - started < 10  # no retry loop (kfp.Client retries 5 x 5 s)


@pytest.mark.parametrize("target, server", [("kfp", "KFP API"), ("argo", "Argo Server")])
def test_an_unauthorised_host_says_401_and_how_to_authenticate(target, server):
    with FakeServer(unauthorised) as fake, pytest.raises(ConfigError) as err:
        submit(cp.diamond, target, host=fake.url, token="expired")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{server} ")
    assert fake.url in message and "401" in message and "Jwt is missing" in message
    assert "token" in message.split("401", 1)[1]
    assert fake.requests[0]["auth"] == "Bearer expired"


@pytest.mark.parametrize("target", ["kfp", "argo"])
def test_a_login_page_is_not_taken_for_the_engine(target):
    with Html() as fake, pytest.raises(ConfigError, match="login page") as err:
        submit(cp.diamond, target, host=fake.url)
    assert fake.url in str(err.value) and "\n" not in str(err.value)


def test_a_kfp_api_error_after_the_health_check_is_one_line():
    def refuse_runs(method, path, body):
        if path.startswith("/apis/v2beta1/healthz"):
            return 200, {}
        return 403, {"message": "user cannot create runs in namespace kubeflow"}

    with FakeServer(refuse_runs) as fake, pytest.raises(ConfigError) as err:
        submit(cp.diamond, "kfp", host=fake.url, experiment="nightly")
    message = str(err.value)
    assert message.startswith(f"the KFP API at {fake.url} refused to ")
    assert "403" in message and "cannot create runs" in message and "\n" not in message


def test_cli_submit_to_a_host_that_is_down_prints_one_error_line(capsys):
    host = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(SystemExit) as done:
        main(["submit", f"{cp.__file__}:diamond", "--target", "kfp", "--host", host])
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cannot reach the KFP API at ")
    assert host in err and "Traceback" not in err
