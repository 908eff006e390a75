"""The seed's own examples (the original MLRun README), written as the seed wrote them with
``mlflowlet`` in place of ``mlrun``. Each runs in a copy of ``examples/`` (params.csv,
secrets.txt, infile.txt), as the seed ran them from its examples directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from mlflowlet import NewRun, get_run_db, new_function, new_runner


def training(context, p1=1, p2=2):
    # access input metadata, values, and inputs
    print(f'Run: {context.name} (uid={context.uid})')
    print(f'Params: p1={p1}, p2={p2}')
    context.logger.info('started training')

    # do some training

    # log the run results (scalar values)
    context.log_result('accuracy', p1 * 2)
    context.log_result('loss', p1 * 3)

    # add a lable/tag to this run
    context.set_label('category', 'tests')

    # log a simple artifact + label the artifact
    context.log_artifact('model.txt', body=b'abc is 123', labels={'framework': 'xgboost'})


handler = training

MY_JOB = '''
from mlflowlet import get_or_create_ctx
from mlflowlet.artifacts import ChartArtifact, TableArtifact


def my_job():
    # load MLRUN runtime context (will be set by the runtime framework e.g. KubeFlow)
    context = get_or_create_ctx('train')

    # get parameters from the runtime context (or use defaults)
    p1 = context.get_param('p1', 1)
    p2 = context.get_param('p2', 'a-string')

    # access input metadata, values, files, and secrets (passwords)
    print(f'Run: {context.name} (uid={context.uid})')
    print(f'Params: p1={p1}, p2={p2}')
    print('accesskey = {}'.format(context.get_secret('ACCESS_KEY')))
    print('file\\n{}\\n'.format(context.get_input('infile.txt').get()))

    # RUN some useful code e.g. ML training, data prep, etc.

    # log scalar result values (job result metrics)
    context.log_result('accuracy', p1 * 2)
    context.log_result('loss', p1 * 3)
    context.set_label('framework', 'sklearn')

    # log various types of artifacts (file, web page, table), will be versioned
    # and visible in the UI
    context.log_artifact('model.txt', body=b'abc is 123', labels={'framework': 'xgboost'})
    context.log_artifact('results.html', body=b'<b> Some HTML <b>', viewer='web-app')
    context.log_artifact(TableArtifact('dataset.csv', '1,2,3\\n4,5,6\\n',
                                        viewer='table', header=['A', 'B', 'C']))

    # create a chart output (will show in the pipelines UI)
    chart = ChartArtifact('chart.html')
    chart.labels = {'type': 'roc'}
    chart.header = ['Epoch', 'Accuracy', 'Loss']
    for i in range(1, 8):
        chart.add_row([i, i/20+0.75, 0.30-i/20])
    context.log_artifact(chart)


if __name__ == "__main__":
    my_job()
'''


@pytest.fixture(autouse=True)
def in_examples(examples_dir, monkeypatch):
    """Run from (a copy of) the examples directory, whose own mlflowlet.db records the runs."""
    monkeypatch.chdir(examples_dir)
    monkeypatch.delenv("MLFLOWLET_DBPATH")
    return examples_dir


def test_training_handler_runs_with_new_runner(capsys):
    train_run = new_runner().run(handler=training, params={'p1': 5})

    assert train_run.state == "completed"
    assert train_run.results == {"accuracy": 10, "loss": 15}
    assert train_run.metadata.labels["category"] == "tests"
    assert train_run.artifact("model.txt").get() == b"abc is 123"
    model = get_run_db().read_artifact("model.txt", project=train_run.metadata.project)
    assert model["labels"] == {"framework": "xgboost"}
    log = train_run.logs()
    assert f"Run: training (uid={train_run.uid})" in log and "Params: p1=5, p2=2" in log
    assert "started training" in log


def test_get_or_create_ctx_script_is_tracked(in_examples):
    (in_examples / "seed_training.py").write_text(MY_JOB)
    proc = subprocess.run([sys.executable, "seed_training.py"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "accesskey = None" in proc.stdout and "line one of the input" in proc.stdout
    run = get_run_db().list_runs("train").objects()[0]
    assert run.state == "completed" and run.results == {"accuracy": 2, "loss": 3}
    assert run.spec.params == {"p1": 1, "p2": "a-string"}
    assert run.spec.inputs == {"infile.txt": "infile.txt"}
    keys = sorted(a["key"] for a in get_run_db().list_artifacts("", tag="*"))
    assert keys == ["chart.html", "dataset.csv", "model.txt", "results.html"]
    chart = get_run_db().read_artifact("chart.html", project=run.metadata.project)
    assert chart["labels"] == {"type": "roc"}


def test_get_or_create_ctx_script_with_secrets_masks_them(in_examples):
    (in_examples / "seed_training.py").write_text(MY_JOB)
    config = NewRun(name="train").with_secrets("file", "secrets.txt").to_json()
    proc = subprocess.run([sys.executable, "seed_training.py"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MLFLOWLET_EXEC_CONFIG": config})
    assert proc.returncode == 0, proc.stderr
    run = get_run_db().list_runs("train").objects()[0]
    assert "accesskey = ***" in run.logs() and "dummy-access-key-123" not in run.logs()


def test_new_run_with_secrets_and_label():
    task = NewRun(handler=handler, name='demo', params={'p1': 5}).with_secrets(
        'file', 'secrets.txt').set_label('type', 'demo')
    run = new_function().run(task)

    assert run.state == "completed" and run.metadata.name == "demo"
    assert run.metadata.labels["type"] == "demo" and run.results["accuracy"] == 10
    assert run.spec.secret_sources == [{"kind": "file", "source": "secrets.txt"}]
    assert "dummy-secret-value-456" not in run.to_yaml()


def test_with_hyper_params_min_loss():
    task = NewRun(handler=handler).with_hyper_params({'p1': [5, 2, 3]}, 'min.loss')
    run = new_function().run(task)

    assert run.state == "completed"
    assert run.results["best_iteration"] == 2 and run.results["loss"] == 6
    assert len(run.status.iterations) == 3 + 1
    assert "iteration_results" in run.outputs


def test_with_param_file_max_accuracy():
    task = NewRun(handler=handler).with_param_file('params.csv', 'max.accuracy')
    run = new_runner().run(task)

    assert run.state == "completed"
    assert run.results["best_iteration"] == 3 and run.results["accuracy"] == 8
    assert [row[2] for row in run.status.iterations[1:]] == [1, 2, 4, 3]


def test_run_db_list_show_and_delete(capsys):
    new_runner().run(handler=training, params={'p1': 5})
    new_runner().run(handler=training, params={'p1': 2})
    capsys.readouterr()

    # connect to a local file DB
    db = get_run_db('./').connect()

    # list all runs
    db.list_runs('').show()
    out = capsys.readouterr().out
    assert out.count("completed") == 2 and "training" in out

    # list all artifact for version "latest"
    db.list_artifacts('', tag='').show()
    assert capsys.readouterr().out.count("model.txt") == 1

    # check different artifact versions
    db.list_artifacts('', tag='*').show()
    assert capsys.readouterr().out.count("model.txt") == 2

    # delete completed runs
    db.del_runs(state='completed')
    assert len(db.list_runs('')) == 0


def test_seed_db_sees_the_runs_made_from_this_directory(in_examples):
    run = new_runner().run(handler=training, params={'p1': 5})
    db = get_run_db('./').connect()
    assert [r["metadata"]["uid"] for r in db.list_runs('')] == [run.uid]
    assert db.path == str(in_examples / "mlflowlet.db")
    script = textwrap.dedent("""
        from mlflowlet import get_run_db
        print(len(get_run_db('./').connect().list_runs('')))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env={k: v for k, v in os.environ.items()
                                           if not k.startswith("MLFLOWLET_")})
    assert proc.stdout.strip() == "1", proc.stderr
