"""The web UI in a real headless Chromium (Debian's, driven by Playwright; no browser download).

Screenshots go to pytest's temporary directory (``screenshots0/`` under its basetemp), never into
the checkout; ``make docs-screens`` makes docs/'s.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _browser import CHROMIUM, FLAGS, require_browser

from mlflowlet.db.sqlite import SQLiteRunDB
from mlflowlet.model import RunObject

pytest.importorskip("fastapi")
CSP_ERRORS: list[str] = []
OUT = Path()  # the module's screenshot directory, set by the ``ui`` fixture
LONG_URI = "s3://bucket/" + "very-long-folder-name/" * 8 + "data.csv"


def _run(uid, name, state="completed", project="demo", start="2024-05-01T10:00:00+00:00",
         end="2024-05-01T10:00:05+00:00", **kw):
    run = RunObject()
    run.metadata.uid, run.metadata.name, run.metadata.project = uid, name, project
    run.metadata.labels = kw.pop("labels", {"team": "vision"})
    run.status.state, run.status.start_time, run.status.end_time = state, start, end
    for key, value in kw.items():
        target = run.spec if hasattr(run.spec, key) else run.status
        setattr(target, key, value)
    return run.to_dict()


def _populate(db: SQLiteRunDB, root: Path) -> None:
    for i in range(12):
        run = _run(f"bulk{i:04d}", "train-model" if i % 2 else "prepare-data",
                   start=f"2024-04-{i + 1:02d}T09:00:00+00:00",
                   state="error" if i % 5 == 0 else "completed", params={"lr": 0.1 * i},
                   results={"accuracy": 0.5 + i / 40})
        db.store_run(run, run["metadata"]["uid"], "demo")
    csv_path = root / "demo" / "main" / "scores.csv"
    csv_path.parent.mkdir(parents=True)
    csv_path.write_text("fold,score,name\n1,0.81,a\n2,0.84,b\n3,0.79,c\n")
    chart = {"key": "loss-curve", "kind": "chart", "viewer": "chart", "format": "html",
             "extra": {"header": ["epoch", "loss"], "rows": [[0, 0.9], [1, 0.5], [2, 0.3]],
                       "chart": "line", "title": "training loss", "x": "epoch"}}
    table = {"key": "scores", "kind": "table", "viewer": "table", "format": "csv",
             "uri": str(csv_path)}
    model = {"key": "model", "kind": "model", "extra": {"metrics": {"auc": 0.93},
                                                        "framework": "sklearn"}}
    main = _run("main0001", "train-model", start="2024-06-01T00:00:00+00:00",
                params={"lr": 0.05, "note": "x" * 300}, results={"accuracy": 0.91},
                artifacts=[chart, table, model],
                inputs={"data": str(csv_path), "remote": LONG_URI},
                labels={"team": "vision", "cache_key": "f" * 64, "pipeline_uid": "p" * 32})
    db.store_run(main, "main0001", "demo")
    db.store_metrics("main0001", "demo", 0, [("loss", s, 1 / (s + 1), 0.0) for s in range(5)])
    db.store_log("main0001", "demo", b"epoch 0 loss 0.9\nepoch 1 loss 0.5\n")
    iterations = [["iter", "state", "param.lr", "output.accuracy"],
                  [1, "completed", 0.1, 0.8], [2, "completed", 0.2, 0.9],
                  [3, "completed", 0.3, 0.85]]
    hyper = _run("hyper001", "tune", start="2024-06-02T00:00:00+00:00", selector="max.accuracy",
                 iterations=iterations, results={"accuracy": 0.9, "best_iteration": 2})
    db.store_run(hyper, "hyper001", "demo")
    pipe = _run("pipe0001", "training-pipeline", start="2024-06-03T00:00:00+00:00")
    db.store_run(pipe, "pipe0001", "demo")
    for n, (uid, name, state) in enumerate([("stepprep", "prep", "completed"),
                                            ("steptrain", "train", "completed"),
                                            ("stepeval", "evaluate", "error")]):
        step = _run(uid, name, state=state, pipeline_uid="pipe0001", parent_uid="pipe0001",
                    start=f"2024-06-03T00:0{n}:00+00:00", end=f"2024-06-03T00:0{n}:30+00:00")
        db.store_run(step, uid, "demo")
    db.store_lineage([
        {"project": "demo", "pipeline_uid": "pipe0001", "producer_uid": "stepprep",
         "output": "dataset", "artifact_key": "dataset", "consumer_uid": "steptrain",
         "consumer_param": "data"},
        {"project": "demo", "pipeline_uid": "pipe0001", "producer_uid": "steptrain",
         "output": "model", "artifact_key": "model", "consumer_uid": "stepeval",
         "consumer_param": "model"},
    ])
    live = _run("live0001", "streaming", state="running", start="2024-06-04T00:00:00+00:00",
                end="")
    db.store_run(live, "live0001", "demo")
    db.store_log("live0001", "demo", b"starting\n")


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.app import create_app

    sync_playwright = require_browser()
    base = tmp_path_factory.mktemp("ui")
    root = base / "artifacts"
    db = SQLiteRunDB(str(base / "ui.db"))
    _populate(db, root)
    app = create_app(db, token="ui-token", artifact_root=str(root))
    global OUT
    OUT = tmp_path_factory.mktemp("screenshots")  # tests write only under temporary directories
    with ThreadedServer(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: CSP_ERRORS.append(m.text)
                if "Content Security Policy" in m.text else None)
        page.set_default_timeout(10000)
        page.goto(server.url + "/")
        page.fill("input[name=token]", "ui-token")  # the login form sets the cookie
        page.click("button[type=submit]")
        page.wait_for_selector("#runs-table")
        yield server, page, db
        browser.close()


def _shot(page, name: str) -> Path:
    path = OUT / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000
    return path


def test_runs_page_lists_filters_and_pages(ui):
    server, page, _ = ui
    page.goto(server.url + "/")
    assert page.locator("tr.run-row").count() == 19
    _shot(page, "ui-runs.png")
    page.fill("input[name=name]", "train-model")
    page.select_option("select[name=state]", "completed")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**state=completed**")
    names = page.locator("tr.run-row a.run-link").all_inner_texts()
    assert names and set(names) == {"train-model"}
    assert page.locator("tr.run-row .state-error").count() == 0


def test_run_page_draws_the_chart_table_and_metrics(ui):
    server, page, _ = ui
    page.goto(server.url + "/?name=train-model")
    page.click("tr.run-row[data-uid=main0001] a.run-link")
    page.wait_for_selector("article[data-key=loss-curve] svg")
    assert page.locator("article[data-key=loss-curve] svg path, "
                        "article[data-key=loss-curve] svg polyline").count() >= 1
    assert page.locator("article[data-key=scores] table.data tbody tr").count() == 3
    assert "auc" in page.locator("article[data-key=model]").inner_text()
    assert page.locator(".charts svg").count() == 1  # the loss metric series
    assert "epoch 1 loss 0.5" in page.locator("#log").inner_text()
    _shot(page, "ui-run.png")


def test_log_follows_a_running_run(ui):
    from playwright.sync_api import expect

    server, page, db = ui
    page.goto(server.url + "/runs/live0001?project=demo")
    expect(page.locator("#run-state")).to_have_text("running")
    db.store_log("live0001", "demo", b"step 42 reached\n")
    db.update_run({"status.state": "completed"}, "live0001", "demo")
    expect(page.locator("#log")).to_contain_text("step 42 reached")
    expect(page.locator("#run-state")).to_have_text("completed")


def test_hyper_page_highlights_the_best_iteration(ui):
    server, page, _ = ui
    page.goto(server.url + "/runs/hyper001?project=demo")
    page.click("#hyper-link")
    page.wait_for_selector("#iterations")
    assert page.locator("#iterations tr.best td").first.inner_text() == "2"
    assert page.locator("svg.scatter circle").count() == 3
    assert page.locator("svg.scatter circle[data-best]").count() == 1
    _shot(page, "ui-hyper.png")


def test_pipeline_page_draws_the_dag_and_opens_a_step(ui):
    server, page, _ = ui
    page.goto(server.url + "/runs/pipe0001?project=demo")
    page.click("#pipeline-link")
    page.wait_for_selector("svg.dag")
    assert page.locator("svg.dag a.step").count() == 3
    labels = page.locator("svg.dag .edge-label").all_text_contents()
    assert any("dataset" in t for t in labels) and any("model" in t for t in labels)
    assert page.locator("svg.dag a.step[data-state=error]").count() == 1
    _shot(page, "ui-pipeline.png")
    page.locator("svg.dag a.step[data-uid=steptrain]").click()
    page.wait_for_url("**/runs/steptrain**")
    assert page.locator("h1").inner_text().startswith("train")


def test_compare_two_selected_runs(ui):
    server, page, _ = ui
    page.goto(server.url + "/?name=train-model")
    boxes = page.locator("input.pick")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("#compare-btn")
    page.wait_for_selector("#compare")
    assert page.locator("#compare thead th").count() == 3
    assert page.locator("#compare tr.differs").count() >= 1


def test_lineage_page_shows_up_and_downstream(ui):
    server, page, _ = ui
    page.goto(server.url + "/lineage?key=dataset&project=demo")
    assert "steptrain"[:8] in page.locator("#direct").inner_text()
    assert "stepeval"[:8] in page.locator("#downstream").inner_text()


def test_long_values_truncate_with_a_tooltip_and_a_copy_button(ui):
    server, page, _ = ui
    page.goto(server.url + "/runs/main0001?project=demo")
    note = page.locator("#params tr", has_text="note").locator("td .val")
    assert note.get_attribute("title") == "x" * 300
    assert note.inner_text() == "x" * 60 + "…"
    copy = page.locator("#params tr", has_text="note").locator("button.copy")
    assert copy.get_attribute("data-copy") == "x" * 300
    from playwright.sync_api import expect

    copy.click()
    expect(copy).to_have_text("copied")  # the clipboard write resolves asynchronously
    remote = page.locator("#inputs tr", has_text="remote").locator("td .val")
    assert remote.get_attribute("title") == LONG_URI
    width = page.locator("#inputs").evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
    assert width  # the long URI does not spill into the next column


def test_internal_labels_sit_behind_details(ui):
    server, page, _ = ui
    page.goto(server.url + "/runs/main0001?project=demo")
    details = page.locator("#labels details.internal")
    assert not details.locator("text=cache_key").is_visible()
    assert page.locator("#labels > .chip", has_text="team=vision").is_visible()
    details.locator("summary").click()
    assert details.locator(".chip", has_text="cache_key").is_visible()
    page.goto(server.url + "/?name=train-model")
    row = page.locator("tr.run-row[data-uid=main0001] td.labels")
    assert "cache_key" not in row.inner_text() and "team=vision" in row.inner_text()


def test_local_file_uris_link_to_their_download(ui):
    import httpx

    server, page, _ = ui
    page.goto(server.url + "/runs/main0001?project=demo")
    link = page.locator("#inputs tr", has_text="data").locator("td a.val")
    href = link.get_attribute("href")
    assert href == "/api/v1/files/demo/main/scores.csv"
    body = httpx.get(server.url + href, cookies={"mlflowlet_token": "ui-token"}).text
    assert body.startswith("fold,score,name")
    assert page.locator("#inputs tr", has_text="remote").locator("td a").count() == 0


def test_table_previews_show_column_types(ui):
    server, page, _ = ui
    page.goto(server.url + "/runs/main0001?project=demo")
    types = page.locator("article[data-key=scores] th .type").all_inner_texts()
    assert types == ["int", "float", "str"]


def test_no_page_breaks_the_content_security_policy(ui):
    server, page, _ = ui
    for path in ("/", "/runs/main0001?project=demo", "/runs/hyper001/iterations?project=demo",
                 "/pipelines/pipe0001?project=demo", "/compare?uid=main0001&uid=bulk0001",
                 "/lineage?key=dataset&project=demo"):
        page.goto(server.url + path)
        page.wait_for_load_state("networkidle")
    assert CSP_ERRORS == []


def test_a_filter_the_store_refuses_is_said_on_the_page(ui):
    server, page, _ = ui
    page.goto(server.url + "/?label=%3Dnokey")
    assert "has no key" in page.locator("#filter-error").inner_text()
    assert page.locator("tr.run-row").count() == 0
