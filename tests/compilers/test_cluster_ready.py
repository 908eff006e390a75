"""What a compiled workflow needs to run on a real cluster (issue 20), checked against the
controllers' own rules (each test names its source) and the official schemas."""

import json

import pytest
import yaml
from compiler_checks import argo_schema_errors

from mlflowlet.compilers import compile, compile_text
from mlflowlet.errors import CompileError
from mlflowlet.pipelines import pipeline, step

IMAGE = "example.com/mlflowlet/steps:1.0"


@step(labels={"owner": "Jane Doe", "mlflowlet/step": "mine", "team": "ml"})
def labelled(x: int = 1) -> dict:
    return {"x": x}


@pipeline(image=IMAGE)
def tagged(x: int = 1):
    labelled(x=x)


def _argo_template(doc, name):
    spec = doc["spec"].get("workflowSpec", doc["spec"])
    return next(t for t in spec["templates"] if t["name"] == name)


def _kfp_docs(text):
    return list(yaml.safe_load_all(text))


def _kfp_pod_labels(text):
    executors = _kfp_docs(text)[-1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return next(iter(executors.values()))["podMetadata"]["labels"]


def _kfp_env(text):
    executors = _kfp_docs(text)[0]["deploymentSpec"]["executors"]
    return {e["name"]: e["value"] for e in next(iter(executors.values()))["container"]["env"]}


def test_step_labels_become_valid_pod_labels_and_stay_exact_in_the_run_record():
    """The API server refuses ``owner: Jane Doe`` as a pod label (label values: at most 63
    alphanumerics, '-', '_', '.'; https://kubernetes.io/docs/concepts/overview/
    working-with-objects/labels/#syntax-and-character-set); mlflowlet's own keys are not a
    step's to set. The run records the labels exactly."""
    doc = compile(tagged, "argo")
    template = _argo_template(doc, "labelled")
    assert template["metadata"]["labels"] == {
        "mlflowlet/step": "labelled", "owner": "Jane-Doe", "team": "ml"}
    env = {e["name"]: e.get("value") for e in template["container"]["env"]}
    spec = json.loads(env["MLFLOWLET_EXEC_CONFIG"])
    assert spec["metadata"]["labels"]["owner"] == "Jane Doe"
    assert argo_schema_errors(doc) == []
    kfp = compile_text(tagged, "kfp")
    assert _kfp_pod_labels(kfp) == {"owner": "Jane-Doe", "team": "ml"}
    spec = json.loads(_kfp_env(kfp)["MLFLOWLET_EXEC_CONFIG"])
    assert spec["metadata"]["labels"]["owner"] == "Jane Doe"


@pytest.mark.parametrize("target", ["argo", "kfp"])
@pytest.mark.parametrize(("option", "value", "match"), [
    ("labels", {"owner": "Jane Doe"}, r"labels: label owner='Jane Doe' is not a valid label value"),
    ("labels", {"bad key!": "x"}, r"labels: label key 'bad key!' is not valid"),
    ("annotations", {"a b": "any text"}, r"annotations: key 'a b' is not valid"),
])
def test_labels_written_into_the_manifest_are_checked_at_compile_time(target, option, value,
                                                                      match):
    """Labels given to the workflow itself are the user's exact text: refused, not altered."""
    with pytest.raises(CompileError, match=match):
        compile(tagged, target, **{option: value})
    assert compile(tagged, target, annotations={"note": "Jane Doe's run"})


def test_cron_workflow_follows_the_argo_release():
    """Argo 3.5 knows only ``spec.schedule`` (``schedules`` came in 3.6 and is the only one in
    4.x: https://argo-workflows.readthedocs.io/en/latest/cron-workflows/); a CronWorkflow name
    is at most 52 characters (``maxCronWorkflowNameLength``, workflow/validate/validate.go)."""
    v4 = compile(tagged, "argo", schedule="0 3 * * *")
    assert v4["spec"]["schedules"] == ["0 3 * * *"] and "schedule" not in v4["spec"]
    assert argo_schema_errors(v4, ("4.1.2",)) == []
    v3 = compile(tagged, "argo", schedule="0 3 * * *", argo_version="3")
    assert v3["spec"]["schedule"] == "0 3 * * *" and "schedules" not in v3["spec"]
    assert argo_schema_errors(v3, ("3.7.18",)) == []

    @pipeline(image=IMAGE, name="a-very-long-pipeline-name-" + "x" * 40)
    def long(x: int = 1):
        labelled(x=x)

    name = compile(long, "argo", schedule="0 3 * * *")["metadata"]["name"]
    assert len(name) <= 52 and name.startswith("a-very-long-pipeline-name-")
    assert len(compile(long, "argo", kind="WorkflowTemplate")["metadata"]["name"]) <= 63
    with pytest.raises(CompileError, match=r"argo_version='2'"):
        compile(tagged, "argo", argo_version="2")


@pytest.mark.parametrize("value", ["my-repos:s3-v1", {"configMap": "my-repos", "key": "s3-v1"}])
def test_artifact_repository_ref_is_an_option(value):
    """Without it Argo needs a default artifact repository; ``artifactRepositoryRef`` names a
    ConfigMap key (https://argo-workflows.readthedocs.io/en/latest/artifact-repository-ref/)."""
    doc = compile(tagged, "argo", artifact_repository_ref=value)
    assert doc["spec"]["artifactRepositoryRef"] == {"configMap": "my-repos", "key": "s3-v1"}
    assert argo_schema_errors(doc) == []
    assert "artifactRepositoryRef" not in compile(tagged, "argo")["spec"]
    with pytest.raises(CompileError, match="give 'configmap-name:key'"):
        compile(tagged, "argo", artifact_repository_ref="only-a-name")


SERVER = "http://mlflowlet.ml.svc:8080"
TRACKED = {"dbpath": SERVER, "artifact_path": "s3://runs/ml", "token_secret": "mlflowlet-api:token"}


def _argo_env(doc, name="labelled"):
    return {e["name"]: e for e in _argo_template(doc, name)["container"]["env"]}


def test_a_tracked_pipeline_gives_pods_the_run_db_artifact_store_and_token_reference():
    """Pods record to the run DB by URL, write artifacts to the shared store (never their own
    /tmp) and read the server's API token from a Secret (``secretKeyRef``,
    https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-environment-variables)."""
    doc = compile(tagged, "argo", **TRACKED)
    env = _argo_env(doc)
    assert env["MLFLOWLET_DBPATH"]["value"] == SERVER
    assert env["MLFLOWLET_ARTIFACT_PATH"]["value"] == "s3://runs/ml"
    assert env["MLFLOWLET_API_TOKEN"] == {"name": "MLFLOWLET_API_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "mlflowlet-api", "key": "token"}}}
    assert argo_schema_errors(doc) == []
    text = compile_text(tagged, "kfp", **TRACKED)
    assert _kfp_env(text)["MLFLOWLET_ARTIFACT_PATH"] == "s3://runs/ml"
    executors = _kfp_docs(text)[-1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    executor = next(iter(executors.values()))
    assert executor["secretAsEnv"][0]["secretName"] == "mlflowlet-api"
    assert executor["secretAsEnv"][0]["keyToEnv"] == [{"secretKey": "token",
                                                       "envVar": "MLFLOWLET_API_TOKEN"}]


def test_the_token_reaches_no_run_spec():
    """The token is the DB client's, not the handler's: no secret source in the run spec."""
    env = _argo_env(compile(tagged, "argo", **TRACKED))
    assert "secret" not in env["MLFLOWLET_EXEC_CONFIG"]["value"]


@pytest.mark.parametrize(("options", "match"), [
    ({"dbpath": "/home/me/runs"}, r"is a file on this machine, which the pods cannot reach"),
    ({"dbpath": "sqlite:///runs.db", "artifact_path": "s3://b"}, r"the pods cannot reach"),
    ({"dbpath": SERVER}, r"no artifact_path: artifacts logged in a pod would stay"),
    ({"dbpath": SERVER, "artifact_path": "s3://b"}, r"give token_secret='secret-name:key'"),
    ({"dbpath": SERVER, "artifact_path": "/tmp/art"}, r"'/tmp/art' is a pod-local path"),
    ({"tracking": False, "dbpath": SERVER}, r"tracking=False \(--no-tracking\) records nothing"),
    ({"token_secret": "a:b"}, r"give dbpath too"),
    ({"dbpath": SERVER, "artifact_path": "s3://b", "token_secret": "nokey"},
     r"token_secret='nokey': give 'secret-name:key'"),
])
def test_a_run_db_or_artifact_path_pods_cannot_reach_is_refused(options, match):
    with pytest.raises(CompileError, match=match):
        compile(tagged, "argo", **options)


@pytest.mark.parametrize("options", [
    {"dbpath": "postgresql://ml:pw-123@db.ml.svc/runs", "artifact_path": "s3://b"},
    {"dbpath": SERVER, "artifact_path": "s3://AKIA:se/cret-9@bucket/runs", "token_secret": "a:b"},
])
def test_credentials_in_a_url_never_reach_the_compiled_yaml(options):
    with pytest.raises(CompileError, match="refused a URL with credentials") as err:
        compile(tagged, "argo", **options)
    assert "pw-123" not in str(err.value) and "cret-9" not in str(err.value)


@pytest.mark.parametrize("target", ["argo", "kfp"])
@pytest.mark.parametrize("options", [
    {"env": {"AWS_SECRET_ACCESS_KEY": "pw-5"}},
    {"env": {"MODE": "x", "hf_token": "pw-5"}},
    {"steps": {"labelled": {"env": {"DB_PASSWORD": "pw-5"}}}},
])
def test_a_credential_given_as_a_plain_env_value_is_refused(options, target):
    with pytest.raises(CompileError, match=r"env\[.*refused: a credential's value would be "
                       r"written into the compiled YAML.*secrets=\{") as err:
        compile_text(tagged, target, tracking=False, **options)
    assert "pw-5" not in str(err.value)
    text = compile_text(tagged, target, tracking=False,
                        env={"MODE": "x", "TOKEN_URL": "", "TOKENIZERS_PARALLELISM": "false",
                             "MAX_TOKENS": "512", "tokenizer": "bert-base-uncased"},
                        secrets={"AWS_SECRET_ACCESS_KEY": "s3-creds:secret"})
    assert "MODE" in text and "s3-creds" in text  # plain settings and secret references pass
    assert "TOKENIZERS_PARALLELISM" in text and "bert-base-uncased" in text  # not credentials


def test_compiling_without_a_run_db_says_nothing_is_recorded_unless_asked(recwarn):
    import warnings

    from mlflowlet.errors import TrackingWarning

    with pytest.warns(TrackingWarning, match="nothing the compiled steps do will be recorded"):
        compile(tagged, "kfp")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        compile(tagged, "kfp", tracking=False)
        compile(tagged, "argo", **TRACKED)


def test_submit_refuses_a_pipeline_that_would_record_nothing(monkeypatch):
    from mlflowlet.compilers.submit import submit
    from mlflowlet.errors import ConfigError

    with pytest.raises(ConfigError, match="submit needs a run DB the pods can reach"):
        submit(tagged, "argo", host="http://127.0.0.1:9")


def test_the_kfp_yaml_states_the_backend_a_collect_needs_and_submit_checks_it():
    """KFP 2.0.x refuses the DAG outputs of a ParallelFor that ``dsl.Collected`` reads
    (kubeflow/pipelines#10035; backend support: #11196, in 2.4.0): the compiled YAML says so
    and submit asks the backend's release (``/apis/v2beta1/healthz``'s ``tag_name``) first."""
    import compiler_pipelines as cp
    from test_submit import FakeServer, fake_kfp

    from mlflowlet.compilers.submit import submit
    from mlflowlet.errors import ConfigError

    assert "# Minimum KFP backend: 2.4.0 for a mapped step's results collected" in \
        compile_text(cp.fanout, "kfp", tracking=False)
    assert "Minimum KFP backend" not in compile_text(cp.diamond, "kfp", tracking=False)

    def backend(release):
        def answer(method, path, body):
            if path.startswith("/apis/v2beta1/healthz"):
                return 200, {"tag_name": release, "multi_user": False}
            return fake_kfp(method, path, body)
        return answer

    with FakeServer(backend("2.0.5")) as fake, pytest.raises(ConfigError) as err:
        submit(cp.fanout, "kfp", host=fake.url, tracking=False)
    assert "is 2.0.5; this pipeline has a mapped step's results collected" in str(err.value)
    assert "needs KFP 2.4.0 or newer" in str(err.value)
    assert [r["path"] for r in fake.requests] == ["/apis/v2beta1/healthz"]  # nothing created
    with FakeServer(backend("2.4.0")) as fake:
        assert submit(cp.fanout, "kfp", host=fake.url, tracking=False).id == "r1"
    with FakeServer(backend("2.0.5")) as fake:  # no collect: any 2.x backend
        assert submit(cp.diamond, "kfp", host=fake.url, tracking=False).id == "r1"



def test_kfp_metrics_reach_the_executor_output_the_launcher_reads(tmp_path, monkeypatch, capsys):
    """KFP shows a step's metrics from its ``system.Metrics`` artifact's metadata, which the
    launcher merges from the executor output file named in the executor input
    (backend/src/v2/component/launcher_v2.go: ``getExecutorOutputFile`` parses it with
    protojson, ``mergeRuntimeArtifacts`` merges the metadata, each key must be a number). The
    compiled step passes the executor input (``{{$}}``); the file parses as the official
    ``ExecutorOutput`` message and holds each finite numeric result."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    from mlflowlet.entrypoint import main

    args = _kfp_docs(compile_text(tagged, "kfp", tracking=False))[0]["deploymentSpec"][
        "executors"]["exec-labelled"]["container"]["args"]
    assert args[args.index("--kfp-executor-input") + 1] == "{{$}}"
    (tmp_path / "mods.py").write_text(
        "def scores(context):\n"
        "    for k, v in {'accuracy': 0.9, 'n': 3, 'ok': True, 'bad': float('nan'),\n"
        "                 'name': 'x'}.items():\n"
        "        context.log_result(k, v)\n")
    monkeypatch.chdir(tmp_path)
    out_file = tmp_path / "gcs" / "out" / "executor_output.json"
    executor_input = {"outputs": {"outputFile": str(out_file), "artifacts": {
        "mlflowlet_metrics": {"artifacts": [{"type": {"schemaTitle": "system.Metrics"},
                                             "uri": "s3://b/m"}]},
        "model": {"artifacts": [{"type": {"schemaTitle": "system.Model"}, "uri": "s3://b/x"}]},
    }}}
    code = main(["--handler", "mods.py:scores", "--kfp-executor-input",
                 json.dumps(executor_input)])
    assert code == 0, capsys.readouterr().err
    parsed = json_format.Parse(out_file.read_text(), pipeline_spec_pb2.ExecutorOutput())
    assert list(parsed.artifacts) == ["mlflowlet_metrics"]
    metadata = json_format.MessageToDict(parsed.artifacts["mlflowlet_metrics"].artifacts[0])
    assert metadata == {"metadata": {"accuracy": 0.9, "n": 3}}


def test_a_quote_in_a_string_parameter_an_argo_condition_reads_is_refused():
    """Argo substitutes ``{{workflow.parameters.x}}`` into the ``when`` text before govaluate
    parses it (https://argo-workflows.readthedocs.io/en/latest/walk-through/conditionals/), so
    ``'it's' == 'a'`` no longer parses and ``'a\\b'`` compares ``ab``: refused at compile time
    (a default) and at submit (an argument); KFP compares values, not text."""
    from test_submit import FakeServer, fake_argo

    from mlflowlet.compilers.submit import submit
    from mlflowlet.pipelines import condition

    def gated(default):
        @pipeline(image=IMAGE, name="gated")
        def body(mode: str = default):
            with condition(mode == "a"):
                labelled(x=1)
        return body

    with pytest.raises(CompileError, match=r"default mode=\"it's\" holds a quote or backslash"):
        compile(gated("it's"), "argo", tracking=False)
    with pytest.raises(CompileError, match=r"mode='a\\\\b' holds a quote"):
        compile(gated("a\\b"), "argo", tracking=False)
    # govaluate ends a string at either quote
    with pytest.raises(CompileError, match=r"mode='a\"b' holds a quote"):
        compile(gated('a"b'), "argo", tracking=False)
    assert compile(gated("it's"), "kfp", tracking=False)
    with FakeServer(fake_argo) as fake, pytest.raises(CompileError, match="argument mode="):
        submit(gated("a"), "argo", host=fake.url, arguments={"mode": "x'y"}, tracking=False)
    assert fake.requests == []  # nothing submitted
    with FakeServer(fake_argo) as fake:
        submit(gated("a"), "argo", host=fake.url, arguments={"mode": "b"}, tracking=False,
               namespace="ml")
    assert len(fake.requests) == 1
