"""The README's snippets run as written, so the docs cannot drift from the code.

Python blocks run in a fresh ``python -c`` process with cwd = a private copy of ``examples/`` and
``MLFLOWLET_DBPATH`` at the test's own directory; shell commands run through ``bash -c`` with the
venv's ``mlflowlet`` script first on ``PATH``. Each check asserts what the snippet's comments
promise. Commands needing S3, a server or PostgreSQL run against the suite's real ones (SeaweedFS,
``mlflowlet server``/``serve`` on free 127.0.0.1 ports, the session's PostgreSQL cluster), the Dask
block on a LocalCluster, ``mlflowlet submit`` against a recording FAKE Argo Server. Only
``CANNOT_RUN`` (the network, a synopsis) skips, by exact command; a README command or block that
is neither checked nor listed fails the suite.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from mlflowlet import get_run_db

README = Path(__file__).parents[1] / "README.md"
VENV_BIN = Path(sys.executable).parent
TIMEOUT = 120


def _sections() -> dict[str, str]:
    """README text by ``## `` heading."""
    parts = re.split(r"^## (.+)$", README.read_text(), flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", _sections()[section], flags=re.M | re.S)


def _commands(block: str) -> list[str]:
    """The block's logical command lines: continuations joined, comment-only lines dropped."""
    joined = re.sub(r"\\\n\s*", "", block)
    lines = [ln.strip() for ln in joined.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def _until(block: str, marker: str) -> str:
    """The block up to (not including) the first line containing ``marker``."""
    lines = block.splitlines()
    cut = next(i for i, ln in enumerate(lines) if marker in ln)
    return "\n".join(lines[:cut]) + "\n"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"README python block failed:\n{code}\n{proc.stderr[-3000:]}"
    return proc


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)


def _ok(proc: subprocess.CompletedProcess[str], command: str) -> str:
    assert proc.returncode == 0, f"{command!r} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


def _field(text: str, name: str) -> str:
    """The last ``name=value`` in ``text`` (the run summary comes after any progress lines)."""
    values = re.findall(rf"\b{name}=(\S+?)(?:,|\s|$)", text)
    assert values, f"no {name}= in:\n{text}"
    return values[-1]


def test_venv_mlflowlet_script_is_the_one_the_commands_run():
    assert shutil.which("mlflowlet", path=_env()["PATH"]) == str(VENV_BIN / "mlflowlet")


# --- python blocks -----------------------------------------------------------------------------


def test_quickstart_block_prints_completed_and_best_iteration_2(examples_dir: Path, dbdir: Path):
    (block,) = _blocks("Quickstart", "python")
    lines = _python(block, examples_dir).stdout.splitlines()

    state, _, results = lines[0].partition(" ")
    assert state == "completed"
    assert ast.literal_eval(results) == {"accuracy": 10, "loss": 13}
    assert lines[1] == "2"  # loss = 3*p1 - 2 over p1 in [5, 2, 3] is least at iteration 2
    tables = "\n".join(lines[2:])
    assert re.search(r"\bsweep\b.*completed|completed.*\bsweep\b", tables), tables
    assert "model.txt" in tables
    assert (dbdir / "mlflowlet.db").exists() and not (examples_dir / "mlflowlet.db").exists()


def test_pipelines_block_runs_the_dag_and_prints_lineage_and_mermaid(examples_dir: Path):
    (block,) = _blocks("Pipelines", "python")
    lines = _python(block, examples_dir).stdout.splitlines()

    assert lines[0] == "completed 0.9"  # the best lr (1.0) gives accuracy 0.8 + 1.0 / 10
    edges = lines[1 : lines.index("flowchart TD")]
    assert sorted(edges) == ["dataset -> dataset", "model -> model", "model -> model"]
    mermaid = "\n".join(lines[lines.index("flowchart TD") :])
    for name in ("prep", "train (hyper)", "evaluate", "deploy"):
        assert f'"{name}"' in mermaid


def test_compile_block_writes_argo_yaml_with_secret_references_only(tmp_path: Path,
                                                                    examples_dir: Path):
    (block,) = _blocks("Compile and submit", "python")
    _python(_until(block, ".submit("), examples_dir)  # submit needs a KFP host

    text = (examples_dir / "train_eval.argo.yaml").read_text()
    workflow = yaml.safe_load(text)
    assert workflow["kind"] == "Workflow"
    envs = [e for t in workflow["spec"]["templates"] for e in t.get("container", {}).get("env", [])]
    refs = [e["valueFrom"]["secretKeyRef"] for e in envs if e["name"] == "AWS_SECRET_ACCESS_KEY"]
    assert refs and all(r == {"name": "aws", "key": "secret"} for r in refs)
    assert "repo/img:tag" in text


def test_kubernetes_block_dry_run_returns_the_job_manifest(examples_dir: Path):
    (block,) = _blocks("Run on Kubernetes", "python")
    prelude = "import json\nfrom mlflowlet import new_runner, new_task\ntask = new_task()\n"
    body = _until(block, 'handler="my_job")  ')  # the last line submits to a cluster
    body = body.replace("r.run(task", "manifest = r.run(task", 1)
    out = _python(prelude + body + "print(json.dumps(manifest))\n", examples_dir).stdout
    job = json.loads(out.strip().splitlines()[-1])

    assert job["kind"] == "Job"
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu"}
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/team/train:1.0"
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}


# The README's Dask block calls a `train` handler defined elsewhere; this one is the reader's.
DASK_HANDLER = """\
def train(context, lr: float = 0.01):
    context.log_result("accuracy", round(1 - abs(lr - 0.1), 4))
"""

DASK_REPORT = """
import json
from mlflowlet import get_run_db
iterations = get_run_db().list_runs(name=run.metadata.name, iter=True)
print(json.dumps({
    "state": run.state, "results": run.results, "uid": run.uid,
    "cluster": sorted(runner.client.scheduler_info()["workers"]),
    "iterations": [[r["metadata"]["iteration"], r["status"]["state"],
                    r["metadata"]["labels"].get("kind"),
                    r["metadata"].get("annotations", {}).get("dask.worker")]
                   for r in iterations],
}))
"""


@pytest.mark.timeout(180)
def test_dask_block_sweeps_on_a_local_cluster(examples_dir: Path):
    (block,) = _blocks("Scale out with Dask", "python")
    assert "handler=train)" in block and "def train" not in block  # the reader brings `train`
    out = _python(DASK_HANDLER + block + DASK_REPORT, examples_dir).stdout
    report = json.loads(out.strip().splitlines()[-1])

    assert report["state"] == "completed"
    assert report["results"] == {"accuracy": 1.0, "best_iteration": 2}  # lr=0.1 is iteration 2
    assert len(report["cluster"]) == 2  # "a local 2-worker cluster"
    iterations = sorted(report["iterations"], key=lambda row: row[0])
    assert [row[:3] for row in iterations] == [
        [0, "completed", "dask"], [1, "completed", "dask"], [2, "completed", "dask"]]
    assert all(row[3] in report["cluster"] for row in iterations[1:])  # ran on its workers


def test_notebook_block_builds_once_and_dry_runs_the_job(examples_dir: Path, fake_docker):
    (block,) = _blocks("From a notebook to a cluster", "python")
    lines = _python(block, examples_dir).stdout.splitlines()
    assert lines == ["True True", "['--script', 'train.py']"]
    assert len(fake_docker.builds) == 1  # the FAKE docker: built once, then reused
    assert "./files/train.py" in fake_docker.built_files("registry.example/ml/train:1")


def test_every_python_block_has_a_test():
    with_blocks = {name for name in _sections() if _blocks(name, "python")}
    assert with_blocks == {"Quickstart", "Pipelines", "Scale out with Dask", "Compile and submit",
                           "Run on Kubernetes", "From a notebook to a cluster"}


# --- the "Command line" section, in order ------------------------------------------------------


def test_command_line_section_commands_do_what_their_comments_say(tmp_path: Path,
                                                                  examples_dir: Path,
                                                                  dbdir: Path):
    (block,) = _blocks("Command line", "bash")
    cwd, seen, uid = tmp_path, {}, ""

    def run_train(out: str, err: str) -> None:
        nonlocal uid
        assert "run 'train' completed" in out
        assert _field(out, "accuracy") == "2" and _field(out, "loss") == "3"  # p1=1 by default
        assert "access key is set: True" in out + err and "line two of the input" in out + err
        uid = _field(out, "uid")

    def sweep(out: str, err: str) -> None:
        assert "iterations=9" in out and _field(out, "accuracy") == "14"  # max over p1 in [3,7,5]

    def param_file(out: str, err: str) -> None:
        assert "iterations=4" in out  # params.csv has 4 rows; p1=4 is row 3
        assert _field(out, "accuracy") == "8" and _field(out, "best_iteration") == "3"

    def dump(out: str, err: str) -> None:
        run = yaml.safe_load(out[out.index("kind: run") :])
        assert run["status"]["state"] == "completed"
        assert run["status"]["results"] == {"accuracy": 6, "p2_length": 8}

    def noctx(out: str, err: str) -> None:
        argv = ast.literal_eval(out.splitlines()[0])
        assert sorted(argv) == sorted(["--p1", "5", "--extra-arg", "1"])
        assert "run 'my_script' completed" in out

    def pipeline(out: str, err: str) -> None:
        assert re.search(r"pipeline train-eval \w+ completed", out)
        for step in ("prep", "train", "evaluate"):
            assert re.search(rf"^{step}\s+completed", out, flags=re.M)

    def get_runs(out: str, err: str) -> None:
        rows = [ln for ln in out.splitlines() if ln.startswith("default ")]
        assert len(rows) == 1 and uid in rows[0]  # the pipeline's train step has no such label

    def get_run(out: str, err: str) -> None:
        run = yaml.safe_load(out)
        assert run["metadata"]["uid"] == uid and run["metadata"]["name"] == "train"

    def artifacts(out: str, err: str) -> None:
        table, _, rest = out.partition("\n{")
        assert "model.txt" in table and "chart.html" in table
        artifact = json.loads("{" + rest)
        assert artifact["key"] == "model.txt" and artifact["tag"] == "latest"

    def logs(out: str, err: str) -> None:
        assert "Params: p1=1, p2=5" in out

    def delete(out: str, err: str) -> None:
        assert re.search(r"deleted \d+ run\(s\)", out)
        refused = _shell("mlflowlet del runs", cwd)  # "refuses to run without a filter"
        assert refused.returncode == 2 and "refusing" in refused.stderr

    def config(out: str, err: str) -> None:
        assert re.search(rf"^dbpath\s+{re.escape(str(dbdir))}\s+MLFLOWLET_DBPATH$", out, re.M)

    def show_version(out: str, err: str) -> None:
        assert out.strip() == f"mlflowlet {version('mlflowlet')}"

    checks: dict[str, Callable[[str, str], None]] = {
        "mlflowlet run --name train ": run_train,
        "mlflowlet run --name train_hyper ": sweep,
        "mlflowlet run --param-file ": param_file,
        "mlflowlet run handler.py:my_func ": dump,
        "echo ": lambda out, err: None,
        "mlflowlet run --mode noctx ": noctx,
        "mlflowlet run train_eval.py:train_eval ": pipeline,
        "mlflowlet get runs ": get_runs,
        "mlflowlet get run UID": get_run,
        "mlflowlet get artifacts ": artifacts,
        "mlflowlet logs UID": logs,
        "mlflowlet del runs ": delete,
        "mlflowlet config": config,
        "mlflowlet version": show_version,
    }
    for command in _commands(block):
        if command == "cd examples":
            cwd = examples_dir
            continue
        key = next((k for k in checks if command.startswith(k)), None)
        assert key, f"README command {command!r} has no check in tests/test_readme.py: add one"
        proc = _shell(re.sub(r"\bUID\b", uid, command), cwd)
        checks[key](_ok(proc, command), proc.stderr)
        seen[key] = command
    assert seen.keys() == checks.keys(), f"checks for commands no longer in the README: " \
                                         f"{set(checks) - set(seen)}"


# --- shell commands elsewhere ------------------------------------------------------------------

# Commands that cannot run here, by their exact text (a trailing comment aside), with the reason.
CANNOT_RUN = {
    "make demo": "creates a .venv and installs from the network",
    "make test": "creates a .venv and installs from the network",
    "pip install -e .": "installs packages from the network",
    "mlflowlet build IMG -r scikit-learn --source . [--push] [--dry-run]":
        "a synopsis with placeholders, not a command",
}


def _bare(command: str) -> str:
    """The command without its trailing ``# comment``."""
    return re.sub(r"\s+#\s.*$", "", command)


def _other_commands() -> list[tuple[str, str]]:
    found = []
    for name, text in _sections().items():
        if name == "Command line":
            continue
        for block in _blocks(name, "bash"):
            found += [(name, c) for c in _commands(block)]
        prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
        inline = re.findall(r"`(mlflowlet (?:run|compile|build) [^`]+)`", prose)
        found += [(name, c) for c in inline]
    return found


def _check_kfp(out: str, cwd: Path) -> None:
    spec = yaml.safe_load((cwd / "out.yaml").read_text())
    assert spec["root"]["inputDefinitions"]["parameters"]["rows"]["defaultValue"] == 500
    assert "repo/img:tag" in (cwd / "out.yaml").read_text()


def _check_argo(out: str, cwd: Path) -> None:
    assert "matches the local run" in out


def _check_job(out: str, cwd: Path) -> None:
    job = yaml.safe_load(out)
    assert job["kind"] == "Job"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/team/train:1.0"
    env = {e["name"]: e.get("value") for e in container["env"]}
    spec = json.loads(env["MLFLOWLET_EXEC_CONFIG"])
    assert spec["spec"]["handler"] == "my_job" and spec["spec"]["command"] == "training.py"


def _check_pipeline(out: str, cwd: Path) -> None:
    assert re.search(r"pipeline train-eval \w+ completed", out)


def _check_nuclio(out: str, cwd: Path) -> None:
    function = yaml.safe_load((cwd / "function.yaml").read_text())
    assert function["kind"] == "NuclioFunction"
    assert {"name": "MLFLOWLET_HANDLER", "value": "handler:training"} in function["spec"]["env"]


def _check_help(out: str, cwd: Path) -> None:
    assert "Usage: mlflowlet" in out and "compile" in out and "run" in out


def _check_notebook(out: str, cwd: Path) -> None:
    assert "run 'train' completed" in out
    assert _field(out, "accuracy") == "10" and _field(out, "loss") == "13"


def _check_runtime_image(out: str, cwd: Path) -> None:
    assert "export MLFLOWLET_IMAGE=registry.example/ml/mlflowlet:0.1.0" in out
    context = cwd / "mlflowlet-build" / "registry-example-ml-mlflowlet-0-1-0"
    assert (context / "Dockerfile").is_file()


def _check_build_compile(out: str, cwd: Path) -> None:
    spec = yaml.safe_load((cwd / "train_eval.kfp.yaml").read_text())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"registry.example/ml/train-eval:1"}
    context = cwd / "mlflowlet-build" / "registry-example-ml-train-eval-1"
    assert (context / "source" / "train_eval.py").is_file()
    assert not (context / "source" / "mlflowlet.db").exists()


OTHER_CHECKS: dict[str, Callable[[str, Path], None]] = {
    "mlflowlet --help": _check_help,
    "mlflowlet run train.ipynb ": _check_notebook,
    "mlflowlet build --runtime-image ": _check_runtime_image,
    "mlflowlet compile train_eval.py:train_eval --target kfp --build ": _check_build_compile,
    "mlflowlet compile examples/train_eval.py:train_eval --target kfp": _check_kfp,
    "mlflowlet compile examples/train_eval.py:train_eval --target argo --check": _check_argo,
    "mlflowlet run --kind job ": _check_job,
    "mlflowlet run examples/train_eval.py:train_eval ": _check_pipeline,
    "mlflowlet serve examples/handler.py:training --export nuclio": _check_nuclio,
}


def _check_submit(command: str, cwd: Path) -> None:
    """Run the README's submit line against a recording FAKE Argo Server (tests/compilers)."""
    sys.path.insert(0, str(Path(__file__).parent / "compilers"))
    from test_submit import FakeServer

    def argo(method: str, path: str, body: dict | None) -> tuple[int, dict]:
        if method == "POST" and path == "/api/v1/workflows/argo":
            return 200, {**body["workflow"], "metadata": {"name": "train-eval-x7k2p"}}
        if method == "GET" and path == "/api/v1/workflows/argo/train-eval-x7k2p":
            return 200, {"status": {"phase": "Succeeded"}}
        return 404, {"message": f"no route {method} {path}"}

    with FakeServer(argo) as fake:
        line = re.sub(r"--host \S+", f"--host {fake.url}", command)
        proc = subprocess.run(["bash", "-c", line], cwd=cwd, capture_output=True, text=True,
                              timeout=TIMEOUT, env={**_env(), "ARGO_TOKEN": "readme-token"})
    out = _ok(proc, command)
    assert "train-eval-x7k2p Succeeded" in out
    post = fake.requests[0]
    assert post["auth"] == "Bearer readme-token"
    images = {t["container"]["image"] for t in post["body"]["workflow"]["spec"]["templates"]
              if "container" in t}
    assert images == {"repo/img:tag"}


# Commands run against real services by the tests at the end of this file (exact text).
S3_COMMAND = (
    "mlflowlet run --name train -i infile.txt=s3://my-bucket/infile.txt -s file=secrets.txt"
    " --artifact-path s3://my-bucket/runs training.py"
)
SERVER_COMMANDS = [
    "mlflowlet server --db ./",
    "MLFLOWLET_API_TOKEN=s3cret mlflowlet server --host 0.0.0.0 "
    "--db postgresql://mlflowlet@db/mlflowlet",
    "export MLFLOWLET_DBPATH=http://127.0.0.1:8080",
]
SERVE_COMMANDS = [
    "mlflowlet serve examples/handler.py:training --port 8090",
    "mlflowlet run -p p1=5 http://127.0.0.1:8090",
]
ON_SERVICES = {S3_COMMAND, *SERVER_COMMANDS, *SERVE_COMMANDS}


def _offline_commands() -> list[tuple[str, str]]:
    return [(s, c) for s, c in _other_commands() if _bare(c) not in ON_SERVICES]


@pytest.mark.parametrize(("section", "command"), _offline_commands(), ids=lambda v: v[:70])
def test_readme_shell_command_runs_offline(section: str, command: str, tmp_path: Path,
                                          examples_dir: Path, fake_docker):
    if _bare(command) in CANNOT_RUN:
        pytest.skip(f"{section}: {CANNOT_RUN[_bare(command)]}")
    if command.startswith("mlflowlet submit "):
        _check_submit(command, tmp_path if "examples/" in command else examples_dir)
        return
    key = next((k for k in OTHER_CHECKS if command.startswith(k)), None)
    assert key, f"README command {command!r} ({section}) is neither checked nor skipped here"
    cwd = tmp_path if "examples/" in command else examples_dir
    OTHER_CHECKS[key](_ok(_shell(command, cwd), command), cwd)


def test_every_offline_check_matches_a_readme_command():
    commands = [c for _, c in _other_commands()]
    for command in [*CANNOT_RUN, *ON_SERVICES]:
        assert command in map(_bare, commands), f"{command!r} is no longer in the README"
    assert any(c.startswith("mlflowlet submit ") for c in commands)
    for key in OTHER_CHECKS:
        assert any(c.startswith(key) for c in commands), f"{key!r} is no longer in the README"



# --- commands run against real services: SeaweedFS, PostgreSQL, servers on 127.0.0.1 ----------


def _section_commands(section: str) -> list[str]:
    return [_bare(c) for name, c in _other_commands() if name == section]


def test_s3_command_reads_its_input_and_writes_its_artifacts_on_seaweedfs(
    examples_dir: Path, dbdir: Path, seaweedfs, monkeypatch: pytest.MonkeyPatch
):
    assert _section_commands("Data in S3 and other stores") == [S3_COMMAND]
    for name in list(os.environ):  # credentials come only from secrets.txt
        if name.startswith(("AWS_", "S3_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(dbdir / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(dbdir / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    template = re.search(r"^```\n(AWS_ACCESS_KEY_ID=.*?)^```",  # secrets.txt, as documented
                         _sections()["Data in S3 and other stores"], flags=re.M | re.S)[1]
    keys = re.findall(r"^#?\s*([A-Z0-9_]+)=", template, flags=re.M)
    assert set(seaweedfs.secrets) <= set(keys), keys
    (examples_dir / "secrets.txt").write_text(
        "".join(f"{k}={seaweedfs.secrets[k]}\n" for k in keys if k in seaweedfs.secrets))
    client = seaweedfs.client()
    try:
        client.create_bucket(Bucket="my-bucket")
    except client.exceptions.BucketAlreadyOwnedByYou:  # an earlier test of this session
        pass
    text = f"written to S3 by {examples_dir}\n"
    client.put_object(Bucket="my-bucket", Key="infile.txt", Body=text.encode())

    proc = _shell(S3_COMMAND, examples_dir)
    out = _ok(proc, S3_COMMAND) + proc.stderr
    assert "run 'train' completed" in out and text.strip() in out  # the S3 object was read
    uid = _field(out, "uid")
    run = get_run_db().read_run(uid)
    targets = {a["key"]: a["target_path"] for a in run["status"]["artifacts"]}
    assert targets["model.txt"].startswith("s3://my-bucket/runs/"), targets
    key = targets["model.txt"].removeprefix("s3://my-bucket/")
    assert client.get_object(Bucket="my-bucket", Key=key)["Body"].read() == b"abc is 123"
    assert run["spec"]["inputs"]["infile.txt"] == "s3://my-bucket/infile.txt"
    recorded = b"".join(f.read_bytes() for f in dbdir.rglob("*") if f.is_file())
    assert seaweedfs.secret_key.encode() not in recorded + out.encode()


def _background(command: str, cwd: Path, log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start a README command in its own process group (stopped by :func:`_stop`)."""
    return subprocess.Popen(["bash", "-c", command], cwd=cwd, env={**_env(), **(env or {})},
                            stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_server_commands_share_the_run_db_over_http(tmp_path: Path, examples_dir: Path,
                                                    dbdir: Path, postgres_cluster):
    import httpx

    from mlflowlet.db.postgres import PostgresRunDB
    from mlflowlet.server._uvicorn import free_port, wait_ready

    assert _section_commands("Server and web UI")[:3] == SERVER_COMMANDS
    embedded, token = free_port(), free_port()
    team = tmp_path / "team"
    team.mkdir()
    pg_url = postgres_cluster.create_database()
    first = _background(f"{SERVER_COMMANDS[0]} --port {embedded}", team, tmp_path / "s1.log")
    second = _background(re.sub(r"postgresql://\S+", pg_url, SERVER_COMMANDS[1])
                         + f" --port {token}", team, tmp_path / "s2.log")
    try:
        wait_ready(f"http://127.0.0.1:{embedded}", timeout=60)
        wait_ready(f"http://127.0.0.1:{token}", timeout=60)
        # export MLFLOWLET_DBPATH=http://...: the CLI reports to the server, not to a local file
        export = SERVER_COMMANDS[2].replace(":8080", f":{embedded}")
        proc = _shell(f"{export}; mlflowlet run examples/handler.py:training -p p1=3", tmp_path)
        uid = _field(_ok(proc, export), "uid")
        assert uid in _ok(_shell(f"{export}; mlflowlet get runs", tmp_path), "get runs")
        listed = httpx.get(f"http://127.0.0.1:{embedded}/api/v1/runs").json()["runs"]
        assert [r["metadata"]["uid"] for r in listed] == [uid]
        assert listed[0]["status"]["results"] == {"accuracy": 6, "loss": 7}
        assert (team / "mlflowlet.db").exists() and not (dbdir / "mlflowlet.db").exists()
        # the token server on PostgreSQL demands the token
        url = f"http://127.0.0.1:{token}/api/v1/runs"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"authorization": "Bearer s3cret"}).status_code == 200
        proc = _shell(f"MLFLOWLET_API_TOKEN=s3cret MLFLOWLET_DBPATH=http://127.0.0.1:{token}"
                      " mlflowlet run examples/handler.py:training -p p1=4", tmp_path)
        stored = PostgresRunDB(pg_url).read_run(_field(_ok(proc, "run on the token server"), "uid"))
        assert stored["status"]["results"] == {"accuracy": 8, "loss": 10}
    finally:
        _stop(first)
        _stop(second)
    assert "s3cret" not in (tmp_path / "s2.log").read_text()


def test_serve_commands_run_a_handler_behind_http(tmp_path: Path, examples_dir: Path):
    from mlflowlet.server._uvicorn import free_port, wait_ready

    assert _section_commands("Server and web UI")[3:5] == SERVE_COMMANDS
    port = free_port()
    serve = _background(SERVE_COMMANDS[0].replace("8090", str(port)), tmp_path,
                        tmp_path / "serve.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=60)
        command = SERVE_COMMANDS[1].replace("8090", str(port))
        out = _ok(_shell(command, tmp_path), command)
    finally:
        _stop(serve)
    assert "completed" in out
    assert _field(out, "accuracy") == "10" and _field(out, "loss") == "13"  # p1=5, p2=2
    run = get_run_db().read_run(_field(out, "uid"))  # the caller records the run
    assert run["status"]["results"] == {"accuracy": 10, "loss": 13}
    assert run["spec"]["params"]["p1"] == 5
