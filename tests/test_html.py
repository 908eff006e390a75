"""Runs and pipeline runs render in Jupyter (``_repr_html_``): what they show, all escaped."""

from __future__ import annotations

import re

from mlflowlet import new_runner, pipeline, step
from mlflowlet.pipelines.refs import condition


def test_a_run_renders_state_params_results_artifacts_and_sparklines(tmp_path):
    def handler(context, note: str = "<script>alert(1)</script>"):
        for s in range(10):
            context.log_metric("loss", 1 / (s + 1), step=s)
        context.log_artifact("report", body=b"a,b\n1,2\n", format="csv")
        return 0.5

    run = new_runner().run(handler=handler, params={"note": "<script>alert(1)</script>"})
    html = run._repr_html_()
    assert "completed" in html and run.uid in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "return" in html and "0.5" in html
    uri = run.status.artifacts[0]["uri"]
    assert f'href="file://{uri}"' in html
    spark = re.search(r'<svg class="spark"[^>]*>.*?</svg>', html)
    assert spark is not None
    path = re.search(r'd="([^"]+)"', spark.group(0)).group(1)
    assert path.count("L") == 9  # one vertex per logged step


def test_a_run_with_no_known_db_renders_without_opening_one(tmp_path):
    from mlflowlet.model import RunObject

    run = RunObject()
    run.metadata.name, run.status.state = "offline", "error"
    run.status.error = "boom <b>"
    html = run._repr_html_()
    assert "offline" in html and "boom &lt;b&gt;" in html
    assert not list(tmp_path.glob("**/*.db"))


def test_a_pipeline_run_renders_its_dag_with_step_states():
    @step
    def make(n: int = 2) -> int:
        return n

    @step
    def use(x: int = 0) -> int:
        return x + 1

    @pipeline(name="shown")
    def shown(n: int = 2):
        made = make(n=n)
        with condition(made.results["return"] > 5):
            use(x=made.results["return"])

    handle = shown.run()
    html = handle._repr_html_()
    assert '<svg class="dag"' in html and "shown" in html
    states = dict(re.findall(r'data-key="(\w+)"[^>]*data-state="(\w+)"', html))
    assert states == {"make": "completed", "use": "skipped"}
    assert "condition" in html and "stroke-dasharray" in html  # the condition edge is dashed
