"""``python -m mlflowlet.entrypoint``: one task in this process, outputs to paths, the run JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from mlflowlet import get_run_db, new_task
from mlflowlet.entrypoint import (
    RUN_JSON_MARKER,
    decode_collected,
    load_spec,
    main,
    read_run_json,
)
from mlflowlet.errors import ParameterError, RunError


def _entry(*args, env=None, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "mlflowlet.entrypoint", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    return proc


@pytest.fixture
def in_examples(examples_dir, monkeypatch):
    monkeypatch.chdir(examples_dir)
    return examples_dir


def _last_run(out: str) -> dict:
    lines = out.strip().splitlines()
    assert lines[-1].startswith(RUN_JSON_MARKER), out
    return read_run_json(out)


def test_runs_a_file_handler_and_prints_the_run_json_last(examples_dir):
    proc = _entry("--handler", "handler.py:my_func", "--param", "p1=4", "--param", "p2=abc",
                  cwd=examples_dir)
    assert proc.returncode == 0, proc.stderr
    assert "my_func got p1=4 p2=abc" in proc.stdout
    run = _last_run(proc.stdout)
    assert run["status"]["state"] == "completed"
    assert run["status"]["results"] == {"accuracy": 8, "p2_length": 3}
    stored = get_run_db().read_run(run["metadata"]["uid"])  # MLFLOWLET_DBPATH is set
    assert stored["status"]["results"] == run["status"]["results"]


def test_writes_artifacts_and_results_to_the_requested_paths(in_examples, capsys):
    examples_dir = in_examples
    code = main(["--handler", "handler.py:training", "--param", "p1=3",
                 "--output", "model.txt=out/model/model.txt", "--result", "accuracy=out/acc",
                 "--result", "loss=out/loss.txt"])
    assert code == 0
    assert (examples_dir / "out/model/model.txt").read_bytes() == b"weights for p1=3"
    assert (examples_dir / "out/acc").read_text() == "6"
    assert (examples_dir / "out/loss.txt").read_text() == "7"
    run = read_run_json(capsys.readouterr().out)
    assert run["spec"]["outputs"] == ["model.txt", "accuracy", "loss"]


def test_spec_comes_from_exec_config_with_flags_on_top(in_examples, monkeypatch, capsys):
    task = new_task(name="from-env", params={"p1": 2, "p2": "xy"}, handler="handler.py:my_func")
    monkeypatch.setenv("MLFLOWLET_EXEC_CONFIG", task.to_json())
    assert main(["--param", "p1=10"]) == 0
    run = read_run_json(capsys.readouterr().out)
    assert run["metadata"]["name"] == "from-env"
    assert run["status"]["results"] == {"accuracy": 20, "p2_length": 2}


def test_spec_file_in_yaml(in_examples, capsys):
    examples_dir = in_examples
    spec = {"metadata": {"name": "yaml-run"},
            "spec": {"handler": "my_func", "command": "handler.py", "params": {"p1": 7}}}
    (examples_dir / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["--spec", "spec.yaml"]) == 0
    run = read_run_json(capsys.readouterr().out)
    assert run["metadata"]["name"] == "yaml-run" and run["status"]["results"]["accuracy"] == 14


def test_inputs_bind_as_local_paths(in_examples, capsys):
    assert main(["--handler", "handler.py:read_input", "--input", "infile=infile.txt"]) == 0
    run = read_run_json(capsys.readouterr().out)
    assert run["status"]["results"] == {"lines": 3, "return": 3}


def test_without_a_run_db_it_uses_a_throwaway_one(examples_dir, monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOWLET_DBPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
    proc = subprocess.run(
        [sys.executable, "-m", "mlflowlet.entrypoint", "--handler", "handler.py:training",
         "--output", "model.txt=model-out.txt"],
        cwd=examples_dir, capture_output=True, text=True, timeout=120,
        env={**env, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    run = _last_run(proc.stdout)
    assert run["status"]["state"] == "completed"
    assert (examples_dir / "model-out.txt").read_bytes() == b"weights for p1=1"
    assert not (examples_dir / "mlflowlet.db").exists()
    folder = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        run["status"]["artifacts"][0]["uri"]))))
    assert not os.path.exists(os.path.join(folder, "mlflowlet.db"))  # the DB file is gone


def test_a_failing_handler_exits_1_with_the_run_json(tmp_path):
    (tmp_path / "boom.py").write_text("def boom(context):\n    raise ValueError('no data')\n")
    proc = _entry("--handler", "boom.py:boom", cwd=tmp_path)
    assert proc.returncode == 1
    assert "ValueError: no data" in proc.stderr.strip().splitlines()[-1]
    run = _last_run(proc.stdout)
    assert run["status"]["state"] == "error" and "ValueError: no data" in run["status"]["error"]


def test_a_missing_output_fails_the_run(in_examples, capsys):
    assert main(["--handler", "handler.py:my_func", "--output", "model=m.bin"]) == 1
    captured = capsys.readouterr()
    assert "logged no artifact 'model'" in captured.err
    run = read_run_json(captured.out)
    assert run["status"]["state"] == "error"
    assert get_run_db().read_run(run["metadata"]["uid"])["status"]["state"] == "error"


def test_an_unwritable_output_path_names_it(in_examples, capsys):
    examples_dir = in_examples
    (examples_dir / "a-file").write_text("x")
    assert main(["--handler", "handler.py:training", "--output", "model.txt=a-file/m.txt"]) == 1
    err = capsys.readouterr().err
    assert "cannot write artifact 'model.txt' to 'a-file/m.txt'" in err


@pytest.mark.parametrize("args, message", [
    (["--handler", "h.py:f", "--param", "p1"], "--param 'p1' is not KEY=VALUE"),
    ([], "no handler to run"),
    (["--spec", "missing.json", "--handler", "h.py:f"], "cannot read spec file"),
])
def test_bad_usage_exits_2_with_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_bad_exec_config_is_bad_usage(monkeypatch, capsys):
    monkeypatch.setenv("MLFLOWLET_EXEC_CONFIG", "{not json")
    assert main(["--handler", "x:y"]) == 2
    assert "MLFLOWLET_EXEC_CONFIG is not valid JSON" in capsys.readouterr().err


def test_exec_secrets_are_merged_into_inline_sources_and_removed(monkeypatch):
    task = new_task(handler="x:y").with_secrets("inline", {"TOKEN": "abc123", "OTHER": "zz9"})
    monkeypatch.setenv("MLFLOWLET_EXEC_CONFIG", task.to_json())
    assert "abc123" not in task.to_json()
    monkeypatch.setenv("MLFLOWLET_EXEC_SECRETS", json.dumps({"TOKEN": "abc123", "OTHER": "zz9"}))
    run = load_spec(None)
    assert run.spec.secret_sources == [
        {"kind": "inline", "source": {"OTHER": "zz9", "TOKEN": "abc123"}}]
    assert "MLFLOWLET_EXEC_SECRETS" not in os.environ


def test_read_run_json_refuses_missing_or_garbage_lines():
    with pytest.raises(RunError, match="printed no MLFLOWLET_RUN_JSON= line"):
        read_run_json("just some output\n")
    with pytest.raises(RunError, match="is not JSON"):
        read_run_json("x\nMLFLOWLET_RUN_JSON={garbage\n")
    with pytest.raises(RunError, match="holds no run"):
        read_run_json("MLFLOWLET_RUN_JSON=[1, 2]\n")
    good = read_run_json(b"MLFLOWLET_RUN_JSON={\"metadata\": {\"uid\": \"u\"}}\nlater\n")
    assert good["metadata"]["uid"] == "u"


def test_the_module_docstring_documents_every_flag():
    import mlflowlet.entrypoint as ep

    flags = ("--spec", "--handler", "--param", "--input", "--output", "--result",
             "--result-json", "--collected")
    for flag in (*flags, "MLFLOWLET_EXEC_CONFIG", "MLFLOWLET_DBPATH", RUN_JSON_MARKER):
        assert flag in ep.__doc__
    parser_flags = textwrap.dedent(ep._parser().format_help())
    for flag in flags:
        assert flag in parser_flags


def test_metrics_flag_writes_the_numeric_results_as_one_json_object(in_examples, capsys):
    code = main(["--handler", "handler.py:my_func", "--param", "p1=3",
                 "--metrics", "out/metrics/mlflowlet_metrics"])
    assert code == 0
    written = json.loads((in_examples / "out/metrics/mlflowlet_metrics").read_text())
    assert written == {"accuracy": 6, "p2_length": 8}
    import mlflowlet.entrypoint as ep

    assert "--metrics" in ep.__doc__


def test_result_json_items_aggregated_as_strings_decode_back_to_their_values(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "mods.py").write_text(textwrap.dedent("""
        def produce(context, v: str):
            import json
            context.log_result("v", json.loads(v))

        def consume(values: list):
            return [type(v).__name__ for v in values]
    """))
    monkeypatch.chdir(tmp_path)
    values = [2.0, "1", "abc", [1, 2], {"a": None}, True]
    texts = []
    for i, value in enumerate(values):
        path = tmp_path / f"r{i}"
        arg = f"v={json.dumps(json.dumps(value))}"
        assert main(["--handler", "mods.py:produce", "--param", arg,
                     "--result-json", f"v={path}"]) == 0
        texts.append(path.read_text())
    assert texts[1] == '"1"'  # a string is quoted, so it cannot read back as a number
    capsys.readouterr()
    aggregated = json.dumps(texts)  # what Argo passes for a mix of scalars and objects
    assert main(["--handler", "mods.py:consume", "--param", f"values={aggregated}",
                 "--collected", "values"]) == 0
    run = read_run_json(capsys.readouterr().out)
    assert run["status"]["results"]["return"] == ["float", "str", "str", "list", "dict", "bool"]
    assert decode_collected("values", aggregated) == values


def test_collected_keeps_items_argo_already_decoded_and_refuses_a_non_list():
    assert decode_collected("v", [[1], {"a": 2}]) == [[1], {"a": 2}]
    assert decode_collected("v", '["plain text", "3"]') == ["plain text", 3]
    with pytest.raises(ParameterError, match="--collected v: expected a JSON list"):
        decode_collected("v", "5")


def test_collected_without_its_param_is_bad_usage(capsys):
    assert main(["--handler", "x:y", "--collected", "values"]) == 2
    assert "--collected values: no --param values" in capsys.readouterr().err


ECHO = '''
import os
import sys


def echo(value=None, tail="", raw=""):
    sys.stdout.write(tail)
    sys.stdout.flush()
    os.write(1, raw.encode())  # past Python: what a C library or a child process writes
    return {"value": value, "type": type(value).__name__}
'''


@pytest.fixture
def echo_dir(tmp_path):
    (tmp_path / "echo_mod.py").write_text(ECHO)
    return tmp_path


@pytest.mark.parametrize(("arg", "value"), [
    ("value:str=1.10", "1.10"), ("value:str=null", "null"), ("value:str=true", "true"),
    ("value:str=1e3", "1e3"), ("value:int=4", 4), ("value:float=1", 1.0),
    ("value:json={\"a\": 0, \"b\": [1, 2.5]}", {"a": 0, "b": [1, 2.5]}),
    ("value:list[int]=[1.0, 2.0]", [1, 2]), ("value=1.10", 1.1),
])
def test_typed_params_arrive_exactly_as_declared(echo_dir, monkeypatch, capsys, arg, value):
    monkeypatch.chdir(echo_dir)
    assert main(["--handler", "echo_mod.py:echo", "--param", arg]) == 0
    results = read_run_json(capsys.readouterr().out)["status"]["results"]
    assert results == {"value": value, "type": type(value).__name__}


def test_a_value_not_of_the_declared_type_is_a_usage_error(echo_dir, monkeypatch, capsys):
    monkeypatch.chdir(echo_dir)
    assert main(["--handler", "echo_mod.py:echo", "--param", "value:int=1.5"]) == 2
    assert "parameter 'value' is declared int but got '1.5'" in capsys.readouterr().err


def test_result_forms_are_written_as_asked(echo_dir, monkeypatch, capsys):
    monkeypatch.chdir(echo_dir)
    args = ["--handler", "echo_mod.py:echo", "--param", 'value:json=[1, 1.0, "a"]']
    for form in ("text", "json", "item", "items"):
        args += ["--result", f"value:{form}=out/{form}"]
    assert main(args) == 0
    read = {f: (echo_dir / "out" / f).read_text() for f in ("text", "json", "item", "items")}
    assert read["json"] == read["text"] == '[1, 1.0, "a"]'
    assert json.loads(json.loads(read["item"])) == [1, 1.0, "a"]
    assert json.loads(read["items"]) == ["1", "1.0", '"a"']


def test_a_condition_operand_is_written_to_compare_as_in_python_or_fails_the_run(
    echo_dir, monkeypatch, capsys
):
    monkeypatch.chdir(echo_dir)
    for value, form, written in (('"2024-01-01"', "when", "'s:2024-01-01'"),
                                 ("true", "when", "1"), ("true", "when-bool", "true")):
        args = ["--handler", "echo_mod.py:echo", "--param", f"value:json={value}"]
        assert main([*args, "--result", f"value:{form}=out/{form}"]) == 0
        assert (echo_dir / "out" / form).read_text() == written
    # a list compares otherwise in govaluate: the run fails naming the result, nothing written
    args = ["--handler", "echo_mod.py:echo", "--param", 'value:json=[1, "a"]']
    assert main([*args, "--result", "value:when=out/list"]) == 1
    assert "result 'value' (--result value:when=...) is a list" in capsys.readouterr().err
    assert not (echo_dir / "out" / "list").exists()


def test_the_run_record_starts_its_own_line_after_output_without_a_newline(echo_dir):
    proc = _entry("--handler", "echo_mod.py:echo", "--param", "tail:str=no newline",
                  cwd=echo_dir)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-2] == "no newline" and lines[-1].startswith(RUN_JSON_MARKER)
    plain = _entry("--handler", "echo_mod.py:echo", "--param", "tail:str=ends\n", cwd=echo_dir)
    assert plain.stdout.splitlines()[-2] == "ends"  # no blank line added
    raw = _entry("--handler", "echo_mod.py:echo", "--param", "tail:str=py\n", "--param",
                 "raw:str=fd-level", cwd=echo_dir)
    assert raw.stdout.splitlines()[-2:-1] == ["fd-level"], raw.stdout[-300:]


def test_a_changed_exec_config_is_refused_by_its_hash(echo_dir, monkeypatch, capsys):
    import hashlib

    monkeypatch.chdir(echo_dir)
    config = '{"metadata": {"name": "e"}}'
    monkeypatch.setenv("MLFLOWLET_EXEC_CONFIG", config)
    good = hashlib.sha256(config.encode()).hexdigest()
    assert main(["--handler", "echo_mod.py:echo", "--config-sha256", good]) == 0
    monkeypatch.setenv("MLFLOWLET_EXEC_CONFIG", '{"metadata": {"name": "f"}}')
    assert main(["--handler", "echo_mod.py:echo", "--config-sha256", good]) == 2
    assert "was compiled with" in capsys.readouterr().err
