"""URL inputs of a local pipeline run: DataItem pipeline parameters, -i on the CLI, caching."""

import os
import textwrap

import pytest

from mlflowlet import get_run_db
from mlflowlet.datastore import DataItem, get_dataitem
from mlflowlet.errors import ConfigError, ParameterError, PipelineError
from mlflowlet.pipelines import pipeline, step
from tests.test_cli import cli

READS: list[str] = []
SECRET = "wJalrXUtnFEMI/K7MDENG"


@step
def read(data: DataItem) -> str:
    READS.append(data.url)
    path = data.local()
    if os.path.isdir(path):
        return ",".join(sorted(os.listdir(path)))
    return open(path, "rb").read().decode()


@pipeline
def from_url(data: DataItem):
    return {"text": read(data=data).output}


@pytest.mark.parametrize("form", ["path", "file_url", "dataitem", "relative"])
def test_a_url_input_feeds_the_steps_dataitem(dbdir, tmp_path, form):
    (tmp_path / "in put é.txt").write_text("héllo")
    path = str(tmp_path / "in put é.txt")
    value = {"path": path, "file_url": f"file://{path}", "dataitem": get_dataitem(path),
             "relative": "in put é.txt"}[form]
    run = from_url.run(data=value)
    assert run.state == "completed" and run.outputs == {"text": "héllo"}
    expected = f"file://{path}" if form == "file_url" else path
    assert run.run.spec.params == {"data": expected}  # the URL as given is what is recorded
    assert run.steps["read"].spec.inputs == {"data": expected}


def test_a_folder_url_gives_the_folder(dbdir, tmp_path):
    (tmp_path / "d" / "b").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("1")
    run = from_url.run(data=f"{tmp_path}/d/")
    assert run.outputs == {"text": "a.txt,b"}


def test_a_url_with_credentials_is_refused_before_anything_is_recorded(dbdir):
    with pytest.raises(ConfigError) as err:
        from_url.run(data=f"s3://AKIAEXAMPLE:{SECRET}@bucket/key")
    assert SECRET not in str(err.value) and "pipeline input 'data'" in str(err.value)
    assert get_run_db().list_runs() == []


def test_a_missing_input_and_a_non_url_are_refused_in_one_line(dbdir):
    with pytest.raises(ParameterError, match="needs input 'data' \\(a URL\\)"):
        from_url.run()
    with pytest.raises(ParameterError, match="takes a URL or path .* got int"):
        from_url.run(data=3)


def test_a_missing_file_fails_the_step_naming_the_input_and_the_path(dbdir, tmp_path):
    run = from_url.run(data=str(tmp_path / "gone.csv"))
    step = run.steps["read"]
    assert run.state == step.state == "error"
    assert step.error.strip().splitlines()[-1].endswith(
        f"input 'data': no such file '{tmp_path / 'gone.csv'}'")


def test_a_url_input_cannot_feed_a_non_dataitem_by_accident(dbdir):
    @step
    def count(n: int) -> int:
        return n

    def wrong(data: DataItem):
        count(n=data)

    with pytest.raises(PipelineError, match="'n' of step 'count' is typed int but gets URL input"):
        _ = pipeline(wrong).dag


def test_the_cache_reruns_a_step_when_the_data_at_the_url_changed(dbdir, tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("one")
    READS.clear()
    first = from_url.run(data=str(path), cache=True)
    again = from_url.run(data=str(path), cache=True)
    assert len(READS) == 1 and again.outputs == first.outputs == {"text": "one"}
    path.write_text("two")
    changed = from_url.run(data=str(path), cache=True)
    assert len(READS) == 2 and changed.outputs == {"text": "two"}


def test_an_s3_key_and_prefix_feed_the_step(dbdir, seaweedfs, monkeypatch):
    bucket = f"in-{os.urandom(6).hex()}"
    client = seaweedfs.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="raw/data é.txt", Body="héllo".encode())
    client.put_object(Bucket=bucket, Key="raw/more/x.txt", Body=b"x")
    for name, value in seaweedfs.secrets.items():
        monkeypatch.setenv(name, value)
    assert from_url.run(data=f"s3://{bucket}/raw/data é.txt").outputs == {"text": "héllo"}
    assert from_url.run(data=f"s3://{bucket}/raw/").outputs == {"text": "data é.txt,more"}
    run = from_url.run(data=f"s3://{bucket}/raw/missing.txt")
    last = run.steps["read"].error.strip().splitlines()[-1]
    assert run.state == "error" and "input 'data'" in last and "raw/missing.txt" in last, last


PIPE = textwrap.dedent('''
    from mlflowlet import DataItem, pipeline, step

    @step
    def read(data: DataItem) -> str:
        return data.get().decode()

    @pipeline
    def from_url(data: DataItem, tag: str = "t"):
        return {"text": read(data=data).output}
''')


def test_cli_input_flags_feed_a_pipelines_url_inputs(capsys, dbdir, tmp_path):
    (tmp_path / "p.py").write_text(PIPE)
    (tmp_path / "in.txt").write_text("from the cli")
    code, out, err = cli(capsys, "run", f"{tmp_path / 'p.py'}:from_url", "-i", "data=in.txt")
    assert code == 0, err
    [run] = get_run_db().list_runs(labels={"kind": "pipeline"}, last=1)
    assert run["spec"]["params"]["data"] == str(tmp_path / "in.txt")
    assert run["status"]["results"] == {"text": "from the cli"}
    code, _, err = cli(capsys, "run", f"{tmp_path / 'p.py'}:from_url", "-i", "tag=x")
    assert code == 2 and "pipeline 'from-url' has no input 'tag'" in " ".join(
        err.replace("│", " ").split())
    code, out, err = cli(capsys, "run", f"{tmp_path / 'p.py'}:from_url",
                         "-i", f"data=s3://AKIAEXAMPLE:{SECRET}@bucket/key")
    assert code != 0 and SECRET not in out + err and "pipeline input 'data'" in err
    runs = get_run_db().list_runs()
    assert runs and all(SECRET not in repr(r) for r in runs)


@pytest.mark.parametrize("url", [
    f"https://bucket.s3.amazonaws.com/key.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={SECRET}",
    f"https://acct.blob.core.windows.net/c/key.csv?sv=2022-11-02&sig={SECRET}",
    f"https://storage.googleapis.com/b/key.csv?Expires=1&Signature={SECRET}",
    f"https://host/key.csv?access_token={SECRET}",
    f"https://host/key.csv#token={SECRET}",
    f"https://host/key.csv?X-Amz-Security-Token={SECRET}",
    f"HTTPS://host/key.csv?x-amz-signature={SECRET.replace('/', '%2F')}",
])
def test_a_url_with_a_credential_in_its_query_or_fragment_is_refused(dbdir, url):
    # a presigned / SAS / token URL is itself the credential: stored with the run or put in
    # the compiled YAML it would hand the data to whoever reads the record
    with pytest.raises(ConfigError) as err:
        from_url.run(data=url)
    assert SECRET not in str(err.value) and SECRET.replace("/", "%2F") not in str(err.value)
    assert "pipeline input 'data'" in str(err.value)
    assert get_run_db().list_runs() == []


def test_a_query_string_without_credentials_passes(dbdir):
    from mlflowlet.datastore._urls import check_no_credentials

    url = "https://host/data.csv?version=3&format=csv#part"
    assert check_no_credentials(url) == url


@step
def read_tree(data: DataItem) -> str:
    READS.append(data.url)
    root = data.local()
    return ",".join(f"{os.path.relpath(os.path.join(d, n), root)}={open(os.path.join(d, n)).read()}"
                    for d, _dirs, files in sorted(os.walk(root)) for n in sorted(files))


@pipeline
def from_tree(data: DataItem):
    return {"text": read_tree(data=data).output}


def test_the_cache_reruns_a_step_when_an_s3_folder_changed_under_the_same_names(
        dbdir, seaweedfs, monkeypatch):
    # the folder's version must cover its objects' content, not only its top-level names
    bucket = f"in-{os.urandom(6).hex()}"
    client = seaweedfs.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="raw/a.txt", Body=b"one")
    client.put_object(Bucket=bucket, Key="raw/sub/b.txt", Body=b"two")
    for name, value in seaweedfs.secrets.items():
        monkeypatch.setenv(name, value)
    READS.clear()
    first = from_tree.run(data=f"s3://{bucket}/raw/", cache=True)
    assert first.outputs == {"text": "a.txt=one,sub/b.txt=two"}
    assert from_tree.run(data=f"s3://{bucket}/raw/", cache=True).outputs == first.outputs
    assert len(READS) == 1  # unchanged: cached
    client.put_object(Bucket=bucket, Key="raw/a.txt", Body=b"ONE")  # same names, new bytes
    assert from_tree.run(data=f"s3://{bucket}/raw/", cache=True).outputs == {
        "text": "a.txt=ONE,sub/b.txt=two"}
    client.put_object(Bucket=bucket, Key="raw/sub/c.txt", Body=b"3")  # nested, new name
    assert from_tree.run(data=f"s3://{bucket}/raw/", cache=True).outputs == {
        "text": "a.txt=ONE,sub/b.txt=two,sub/c.txt=3"}
    assert len(READS) == 3
