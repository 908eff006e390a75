"""Submitting to KFP and Argo, against small local HTTP servers that record the requests (fakes).

The integration tests at the end talk to real servers when ``KFP_HOST`` / ``ARGO_SERVER`` are set.
"""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import compiler_pipelines as cp
import pytest

from mlflowlet.compilers.submit import submit
from mlflowlet.errors import ConfigError, RunError

INTEGRATION = {"KFP_HOST": os.environ.get("KFP_HOST"),  # read before the env is cleaned
               "ARGO_SERVER": os.environ.get("ARGO_SERVER"),
               "ARGO_TOKEN": os.environ.get("ARGO_TOKEN", "")}


class FakeServer:
    """A recording HTTP server on 127.0.0.1; ``answer(method, path, body)`` gives (code, json)."""

    def __init__(self, answer):
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method):
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(size)) if size else None
                fake.requests.append({"method": method, "path": self.path, "body": body,
                                      "auth": self.headers.get("Authorization")})
                code, reply = answer(method, self.path, body)
                data = json.dumps(reply).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def fake_argo(method, path, body):
    if method == "POST" and path.startswith("/api/v1/workflows/"):
        return 200, {**body["workflow"], "metadata": {"name": "diamond-x7k2p"}}
    if method == "POST" and path.startswith("/api/v1/cron-workflows/"):
        return 200, body["cronWorkflow"]
    if method == "GET" and path == "/api/v1/workflows/ml/diamond-x7k2p":
        return 200, {"metadata": {"name": "diamond-x7k2p"}, "status": {"phase": "Succeeded"}}
    return 404, {"message": f"no route {method} {path}"}


def fake_kfp(method, path, body):
    if path.startswith("/apis/v2beta1/healthz"):
        return 200, {}
    if method == "GET" and path.startswith("/apis/v2beta1/experiments"):
        return 200, {"experiments": [{"experiment_id": "e1", "display_name": "nightly"}],
                     "total_size": 1}
    if method == "POST" and path == "/apis/v2beta1/runs":
        return 200, {"run_id": "r1", "display_name": body["display_name"], "state": "PENDING"}
    if method == "GET" and path == "/apis/v2beta1/runs/r1":
        return 200, {"run_id": "r1", "state": "SUCCEEDED"}
    return 404, {"error": f"no route {method} {path}"}


def test_argo_submit_posts_the_workflow_with_a_bearer_token():
    with FakeServer(fake_argo) as fake:
        handle = cp.diamond.submit("argo", host=fake.url, arguments={"rows": 7}, token="tok",
                                   namespace="ml")
        assert handle.url == f"{fake.url}/workflows/ml/diamond-x7k2p"
        assert handle.wait(timeout=10) == "Succeeded"
        assert handle.state == "completed"
    post = fake.requests[0]
    assert (post["method"], post["path"], post["auth"]) == ("POST", "/api/v1/workflows/ml",
                                                             "Bearer tok")
    params = post["body"]["workflow"]["spec"]["arguments"]["parameters"]
    assert {p["name"]: p["value"] for p in params} == {"rows": "7", "label": "d"}
    assert fake.requests[-1]["path"] == "/api/v1/workflows/ml/diamond-x7k2p"


def test_argo_schedule_creates_a_cron_workflow_that_has_no_end():
    with FakeServer(fake_argo) as fake:
        handle = submit(cp.diamond, "argo", host=fake.url, namespace="ml", schedule="0 1 * * *")
    assert fake.requests[0]["path"] == "/api/v1/cron-workflows/ml"
    assert fake.requests[0]["body"]["cronWorkflow"]["spec"]["schedules"] == ["0 1 * * *"]
    assert handle.kind == "CronWorkflow" and handle.url.endswith("/cron-workflows/ml/diamond")
    with pytest.raises(RunError, match="not a run"):
        handle.wait()


def test_argo_refusal_is_reported_with_the_server_message():
    def refuse(method, path, body):
        return 403, {"message": "token not valid"}

    with FakeServer(refuse) as fake, pytest.raises(ConfigError, match="403.*token not valid"):
        submit(cp.diamond, "argo", host=fake.url, token="bad")


def test_kfp_submit_goes_through_kfp_client():
    with FakeServer(fake_kfp) as fake:
        handle = cp.hyper.submit("kfp", host=fake.url, arguments={"depth": 3},
                                 experiment="nightly", token="tok")
        assert handle.id == "r1" and handle.url == f"{fake.url}/#/runs/details/r1"
        assert handle.wait(timeout=10) == "SUCCEEDED"
    run = next(r for r in fake.requests if r["path"] == "/apis/v2beta1/runs")
    assert run["body"]["experiment_id"] == "e1"
    assert run["body"]["pipeline_spec"]["pipelineInfo"]["name"] == "hyper"
    assert run["body"]["runtime_config"]["parameters"] == {"depth": 3}
    assert run["auth"] == "Bearer tok"


def test_submit_without_a_host_names_the_variable():
    with pytest.raises(ConfigError, match="ARGO_SERVER"):
        submit(cp.diamond, "argo")


def test_cli_submit_prints_the_ui_link(capsys):
    from mlflowlet.cli import main

    with FakeServer(fake_argo) as fake, pytest.raises(SystemExit) as done:
        main(["submit", f"{cp.__file__}:diamond", "--target", "argo", "--host", fake.url,
              "--namespace", "ml", "-p", "rows=3", "--wait"])
    assert done.value.code == 0
    assert fake.requests[0]["body"]["workflow"]["spec"]["arguments"]["parameters"][0] == {
        "name": "rows", "value": "3"}
    out = capsys.readouterr().out
    assert f"{fake.url}/workflows/ml/diamond-x7k2p" in out and "Succeeded" in out


@pytest.mark.integration
@pytest.mark.skipif(not INTEGRATION["ARGO_SERVER"], reason="ARGO_SERVER is not set")
def test_argo_server_accepts_the_workflow():
    handle = submit(cp.diamond, "argo", host=INTEGRATION["ARGO_SERVER"],
                    token=INTEGRATION["ARGO_TOKEN"], verify_ssl=False)
    assert handle.kind == "Workflow" and handle.id.startswith("diamond-")
    assert handle.url.endswith(f"/{handle.id}")
    # a GET of the workflow by its name (a 404 raises); its pods cannot pull the example image
    assert handle.status() in ("", "Pending", "Running", "Failed", "Error")


@pytest.mark.integration
@pytest.mark.skipif(not INTEGRATION["KFP_HOST"], reason="KFP_HOST is not set")
def test_kfp_accepts_the_pipeline():
    handle = submit(cp.diamond, "kfp", host=INTEGRATION["KFP_HOST"])
    assert handle.kind == "run" and handle.id
    assert handle.url.endswith(f"/#/runs/details/{handle.id}")
