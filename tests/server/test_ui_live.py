"""What a user sees, in real headless Chromium: charts with every logged step, a live pipeline.

Runs are recorded for real (in this process) into the run DB the server reads.
"""

from __future__ import annotations

import math
import threading

import pytest
from _browser import chromium, login

pytest.importorskip("fastapi")
TOKEN = "live-token"


@pytest.fixture
def site(clean_env):
    from mlflowlet.db import get_run_db
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.app import create_app

    db = get_run_db()
    with ThreadedServer(create_app(db, token=TOKEN)) as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15000)
        login(page, server.url, TOKEN)
        yield server, page, db


def test_each_chart_has_as_many_points_as_the_metric_has_steps(site):
    import httpx

    from mlflowlet import new_runner

    server, page, db = site

    def handler(context):
        for step in range(25):
            context.log_metric("loss", 1 / (step + 1), step=step)
        for step in range(3000):
            context.log_metric("noisy", math.sin(step / 7) + (5 if step == 1234 else 0), step=step)

    run = new_runner().run(handler=handler, project="charts")
    page.goto(f"{server.url}/runs/{run.uid}?project=charts")
    logged = db.get_metrics(run.uid, "loss")
    points = page.locator("figure.chart[data-key=loss] circle.pt")
    assert points.count() == len(logged) == 25
    steps = [float(s) for s in points.evaluate_all("els => els.map(e => e.dataset.step)")]
    assert steps == [float(r["step"]) for r in logged]
    values = points.evaluate_all("els => els.map(e => Number(e.dataset.value))")
    assert values == [r["value"] for r in logged]

    big = page.locator("svg.metric[data-key=noisy]")
    assert big.get_attribute("data-logged") == "3000"
    drawn = int(big.get_attribute("data-drawn"))
    assert drawn <= 400
    assert big.locator("path").first.get_attribute("d").count("L") == drawn - 1
    shown = page.locator("figure.chart[data-key=noisy]").evaluate(
        "f => JSON.parse(f.querySelector('g.series').dataset.points).map(p => p[1])")
    assert max(shown) == max(r["value"] for r in db.get_metrics(run.uid, "noisy"))  # the spike
    assert "3000 points" in page.locator("figure.chart[data-key=noisy] figcaption").inner_text()
    href = page.locator("figure.chart[data-key=noisy] figcaption a").get_attribute("href")
    exact = httpx.get(server.url + href, headers={"authorization": f"Bearer {TOKEN}"}).json()
    assert [r["value"] for r in exact["metrics"]] == [
        r["value"] for r in db.get_metrics(run.uid, "noisy")]

    chart = page.locator("svg.metric[data-key=loss]")
    box = chart.bounding_box()
    x0, x1, px0, px1 = (float(chart.get_attribute(f"data-{a}")) for a in ("x0", "x1", "px0", "px1"))
    scale = box["width"] / float(chart.get_attribute("width"))
    at = px0 + (12 - x0) / (x1 - x0) * (px1 - px0)  # step 12, in the chart's own units
    page.mouse.move(box["x"] + at * scale, box["y"] + box["height"] / 2)
    tip = page.locator(".chart-tip")
    assert tip.is_visible() and "step 12" in tip.inner_text()
    assert f"loss: {1 / 13!r}" in tip.inner_text()


def test_the_live_pipeline_page_changes_state_without_reload(site):
    from playwright.sync_api import expect

    from mlflowlet import pipeline, step

    server, page, db = site
    gate = threading.Event()

    @step
    def prepare(rows: int = 3) -> int:
        return rows

    @step
    def slow(rows: int = 0) -> int:
        gate.wait(60)
        return rows * 2

    @pipeline(name="live-demo")
    def demo(rows: int = 3):
        slow(rows=prepare(rows=rows).results["return"])

    handle = demo.run(project="live", wait=False)
    try:
        page.goto(f"{server.url}/pipelines/{handle.uid}?project=live")
        page.evaluate("() => { window.__sameDocument = true; }")
        node = page.locator("svg.dag .step[data-key=slow]")
        expect(node).to_have_attribute("data-state", "running")
        expect(page.locator("#pipeline-state")).to_have_text("running")
        gate.set()
        handle.wait(60)
        expect(node).to_have_attribute("data-state", "completed")
        expect(page.locator("#pipeline-state")).to_have_text("completed")
        expect(page.locator("#steps tr[data-key=slow] .state")).to_have_text("completed")
        expect(page.locator("#log")).to_contain_text("step slow: completed")
        assert page.evaluate("() => window.__sameDocument") is True  # never reloaded
    finally:
        gate.set()
        handle.wait(60)
    assert "step prepare: running" in db.get_log(handle.uid, "live").decode()


def test_the_pipeline_page_draws_the_exit_sub_pipeline_steps(clean_env):
    from mlflowlet.db import get_run_db
    from mlflowlet.server._live import dag_svg, live_graph
    from tests.compilers.exit_pipelines import with_exit_pipeline

    run = with_exit_pipeline.run(fail=True)
    assert run.state == "error"
    graph = live_graph(get_run_db(), run.uid)
    nodes = {n["name"]: n for n in graph["nodes"]}
    assert {n: nodes[n]["state"] for n in ("notify", "good_news", "bad_news")} == {
        "notify": "completed", "good_news": "skipped", "bad_news": "completed"}
    assert nodes["notify"]["uid"] == run.steps["notify"].uid
    assert [n for n, e in nodes.items() if "on exit" in e["badges"]] == [
        "notify", "good_news", "bad_news"]
    assert {"source": "notify", "target": "good_news"}.items() <= next(
        e for e in graph["edges"] if e["target"] == "good_news").items()
    svg = dag_svg(graph)
    assert all(f">{name}<" in svg for name in ("notify", "good_news", "bad_news"))


def test_the_retry_bookkeeping_labels_sit_with_the_internal_ones():
    from mlflowlet.server._views import split_labels

    user, internal = split_labels({"attempt": "2", "retry_of": "u1", "step": "s", "team": "a"})
    assert user == {"team": "a"}
    assert internal == {"attempt": "2", "retry_of": "u1", "step": "s"}
