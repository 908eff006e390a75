"""``mlflowlet server`` and ``mlflowlet serve`` from the command line, in real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


def _start(args: list[str], tmp_path, env_extra: dict | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
    env.update(env_extra or {})
    return subprocess.Popen([sys.executable, "-m", "mlflowlet", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_server_starts_in_one_command_on_the_embedded_db(tmp_path):
    from mlflowlet.server._uvicorn import free_port, wait_ready

    port = free_port()
    proc = _start(["server", "--host", "0.0.0.0", "--port", str(port), "--db",
                   str(tmp_path / "runs")], tmp_path)
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=30)
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/runs").json()["runs"] == []
        assert "<title>runs" in httpx.get(f"http://127.0.0.1:{port}/").text
    finally:
        out = _stop(proc)
    assert "no MLFLOWLET_API_TOKEN set" in out and "127.0.0.1 only" in out
    assert (tmp_path / "runs" / "mlflowlet.db").exists()


def test_server_with_a_token_demands_it_and_never_prints_it(tmp_path):
    from mlflowlet.server._uvicorn import free_port, wait_ready

    port, token = free_port(), "cli-secret-token-123"
    proc = _start(["server", "--port", str(port), "--db", str(tmp_path)], tmp_path,
                  {"MLFLOWLET_API_TOKEN": token})
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=30)
        url = f"http://127.0.0.1:{port}/api/v1/runs"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"authorization": f"Bearer {token}"}).status_code == 200
    finally:
        out = _stop(proc)
    assert "Bearer" in out and token not in out


def test_serve_hosts_a_handler_file(tmp_path):
    from mlflowlet.server._uvicorn import free_port, wait_ready

    (tmp_path / "fn.py").write_text("def add(context, a: int = 1, b: int = 2):\n"
                                    "    return a + b\n")
    port = free_port()
    proc = _start(["serve", "fn.py:add", "--port", str(port)], tmp_path)
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=30)
        run = httpx.post(f"http://127.0.0.1:{port}/", json={"spec": {"params": {"a": 40}}}).json()
    finally:
        _stop(proc)
    assert run["status"]["results"] == {"return": 42}


def test_serve_export_nuclio_writes_function_yaml(tmp_path):
    (tmp_path / "fn.py").write_text("def add(context, a: int = 1):\n    return a\n")
    proc = subprocess.run([sys.executable, "-m", "mlflowlet", "serve", "fn.py:add", "--export",
                           "nuclio", "-o", "out.yaml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load((tmp_path / "out.yaml").read_text())
    assert config["kind"] == "NuclioFunction" and config["spec"]["handler"].startswith("fn:")
    bad = subprocess.run([sys.executable, "-m", "mlflowlet", "serve", "fn.py:add", "--export",
                          "lambda"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "nuclio" in bad.stderr
