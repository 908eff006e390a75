"""``mlflowlet serve --export nuclio``: the function.yaml fields Nuclio reads, and its entry."""

from __future__ import annotations

import base64
import json
import re
import sys
import textwrap

import pytest
import yaml

from mlflowlet.server.nuclio import PYTHON_RUNTIMES, export_nuclio, nuclio_function

HANDLER = textwrap.dedent('''
    def score(context, x: int = 1):
        context.log_result("y", x * 3)
''')
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_nuclio_fields(config: dict) -> None:
    """The fields of Nuclio's function-configuration reference this export relies on."""
    assert config["apiVersion"] == "nuclio.io/v1"
    assert config["kind"] == "NuclioFunction"
    assert DNS1123.match(config["metadata"]["name"]) and len(config["metadata"]["name"]) <= 63
    spec = config["spec"]
    assert spec["runtime"] in PYTHON_RUNTIMES
    module, _, entry = spec["handler"].partition(":")
    assert module and entry.isidentifier()
    assert all(set(e) == {"name", "value"} and isinstance(e["value"], str) for e in spec["env"])
    assert isinstance(spec["minReplicas"], int) and spec["maxReplicas"] >= spec["minReplicas"]
    http = spec["triggers"]["http"]
    assert http["kind"] == "http" and isinstance(http["numWorkers"], int)
    assert isinstance(spec["build"]["commands"], list) and spec["build"]["baseImage"]


def test_export_from_a_file_embeds_the_source_with_an_entry(tmp_path):
    path = tmp_path / "scoring.py"
    path.write_text(HANDLER)
    out = export_nuclio(f"{path}:score", str(tmp_path / "function.yaml"), name="Scoring_Fn",
                        db="http://mlflowlet:8080")
    config = yaml.safe_load(open(out))
    check_nuclio_fields(config)
    assert config["metadata"]["name"] == "scoring-fn"
    assert config["spec"]["handler"] == "scoring:mlflowlet_nuclio_handler"
    assert config["spec"]["build"]["codeEntryType"] == "sourceCode"
    env = {e["name"]: e["value"] for e in config["spec"]["env"]}
    assert env == {"MLFLOWLET_HANDLER": "scoring:score", "MLFLOWLET_DBPATH": "http://mlflowlet:8080"}
    source = base64.b64decode(config["spec"]["build"]["functionSourceCode"]).decode()
    assert source.startswith(HANDLER) and "def mlflowlet_nuclio_handler(context, event)" in source


def test_exported_source_runs_an_event_like_nuclio_would(tmp_path, monkeypatch):
    path = tmp_path / "scoring.py"
    path.write_text(HANDLER)
    config = nuclio_function(f"{path}:score")
    source = base64.b64decode(config["spec"]["build"]["functionSourceCode"]).decode()
    monkeypatch.delenv("MLFLOWLET_DBPATH", raising=False)
    namespace: dict = {}
    exec(compile(source, "scoring.py", "exec"), namespace)

    class NuclioEvent:
        body = json.dumps({"spec": {"params": {"x": 5}}}).encode()
        headers = {"content-type": "application/json"}
        method, path = "POST", "/"

    run = namespace["mlflowlet_nuclio_handler"](object(), NuclioEvent())
    assert run["status"]["state"] == "completed" and run["status"]["results"] == {"y": 15}


def test_export_of_a_module_handler_uses_the_package_entry(monkeypatch, tmp_path):
    (tmp_path / "modhandlers.py").write_text(HANDLER)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = nuclio_function("modhandlers:score", workers=8)
    check_nuclio_fields(config)
    assert config["spec"]["handler"] == "mlflowlet.server.nuclio:handler"
    assert config["spec"]["triggers"]["http"]["numWorkers"] == 8
    from mlflowlet.server import nuclio

    monkeypatch.setenv("MLFLOWLET_HANDLER", "modhandlers:score")
    monkeypatch.delenv("MLFLOWLET_DBPATH", raising=False)

    class Ev:
        body = {"spec": {"params": {"x": 2}}}

    assert nuclio.handler(None, Ev())["status"]["results"] == {"y": 6}
    sys.modules.pop("modhandlers", None)


def test_bad_handler_reference_is_refused():
    from mlflowlet.errors import ConfigError

    with pytest.raises(ConfigError, match="file.py:function"):
        nuclio_function("no_colon_here")
    with pytest.raises(ConfigError, match="does not exist"):
        nuclio_function("missing.py:f")


def test_the_build_installs_this_mlflowlet_version(tmp_path):
    """An unpinned ``mlflowlet[server]`` installs whatever the index has newest, not the version
    that wrote the function (the entry code and the package would disagree)."""
    from mlflowlet import __version__

    path = tmp_path / "scoring.py"
    path.write_text(HANDLER)
    (command,) = nuclio_function(f"{path}:score", requirements=["numpy"])["spec"]["build"][
        "commands"]
    assert command == f"pip install 'mlflowlet[server]=={__version__}' 'numpy'"


def test_the_function_answers_json_through_nuclios_response_rules(tmp_path, monkeypatch):
    """nuclio-sdk-py ``Response.from_entrypoint_output``: a str is sent as ``text/plain``, a
    dict as ``application/json`` (the rules re-stated here, as the SDK applies them)."""
    path = tmp_path / "scoring.py"
    path.write_text(HANDLER)
    source = base64.b64decode(
        nuclio_function(f"{path}:score")["spec"]["build"]["functionSourceCode"]).decode()
    monkeypatch.delenv("MLFLOWLET_DBPATH", raising=False)
    namespace: dict = {}
    exec(compile(source, "scoring.py", "exec"), namespace)

    class Ev:
        body = b'{"spec": {"params": {"x": 4}}}'

    out = namespace["mlflowlet_nuclio_handler"](object(), Ev())
    content_type = "text/plain" if isinstance(out, str) else "application/json"
    assert content_type == "application/json" and json.dumps(out)
    assert out["status"]["results"] == {"y": 12}


def test_replicas_scale_by_default_and_bad_counts_are_refused(tmp_path):
    """``spec.minReplicas`` / ``maxReplicas`` / ``targetCPU`` (function-configuration reference):
    min = max = 1 pinned one replica whatever the load."""
    path = tmp_path / "scoring.py"
    path.write_text(HANDLER)
    spec = nuclio_function(f"{path}:score")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"], spec["targetCPU"]) == (1, 4, 75)
    spec = nuclio_function(f"{path}:score", min_replicas=2, max_replicas=10)["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    from mlflowlet.errors import ConfigError

    with pytest.raises(ConfigError, match="min_replicas=3, max_replicas=2"):
        nuclio_function(f"{path}:score", min_replicas=3, max_replicas=2)
