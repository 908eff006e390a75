"""Regenerate the UI screenshots in docs/ (``make docs-screens``).

Records real runs into a fresh run DB (a training run logging metric series and artifacts, a few
more to compare, a sweep, a pipeline with a condition and a map, and a pipeline caught while it
runs), serves them with ``mlflowlet server`` in-process, and photographs each page in headless
Chromium (Debian's /usr/bin/chromium through Playwright; no browser download).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
CHROMIUM = "/usr/bin/chromium"
TOKEN = "docs-token"
GATE = threading.Event()  # holds the live pipeline's slow step until its screenshot is taken


def train(context, lr: float = 0.05, epochs: int = 40, optimizer: str = "adam"):
    """Train (for the pictures): metric series per epoch, a table, a chart, a model."""
    from mlflowlet.artifacts import ChartArtifact

    loss = acc = 0.0
    for epoch in range(epochs):
        loss = 0.9 * math.exp(-epoch * lr * 1.2) + 0.05 + 0.01 * math.sin(epoch * 1.7)
        acc = 0.97 - 0.5 * loss
        context.log_metrics({"loss": round(loss, 5), "accuracy": round(acc, 5)}, step=epoch)
        context.log_metric("val_loss", round(loss * 1.08 + 0.01, 5), step=epoch)
        print(f"epoch {epoch:02d} loss={loss:.4f} accuracy={acc:.4f}")
    rows = [[name, round(0.4 / (i + 1), 4)] for i, name in enumerate(["age", "income", "tenure"])]
    context.log_artifact("feature_importance", body="feature,importance\n" + "\n".join(
        f"{n},{v}" for n, v in rows) + "\n", format="csv", viewer="table")  # fmt: skip
    context.log_artifact(ChartArtifact("roc", ["fpr", "tpr"], [[0, 0], [0.1, 0.6], [0.3, 0.85],
                                                               [1, 1]], title="ROC curve"))
    context.log_model("classifier", body=b"weights", metrics={"accuracy": round(acc, 4)},
                      parameters={"lr": lr, "epochs": epochs}, framework="sklearn")
    context.log_results({"accuracy": round(acc, 4), "loss": round(loss, 4)})


def sweep_trial(context, lr: float = 0.1, depth: int = 3):
    """Score one point of the sweep."""
    context.log_result("accuracy", round(0.95 - abs(lr - 0.08) * 2 - abs(depth - 5) * 0.01, 4))


def record(root: str) -> dict[str, str]:
    """Record the demo runs; return the uids the screenshots open."""
    from mlflowlet import new_runner, new_task

    runner = new_runner()
    uids = {}
    for lr in (0.05, 0.08, 0.12):
        run = runner.run(new_task(name="train-classifier", handler=train, project="churn",
                                  params={"lr": lr}, labels={"team": "growth"}))
        uids.setdefault("train", run.uid)
        uids.setdefault("compare", []).append(run.uid)  # type: ignore[attr-defined]
    task = new_task(name="tune-classifier", handler=sweep_trial, project="churn",
                    hyper_params={"lr": [0.01, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3],
                                  "depth": [2, 3, 4, 5, 6, 8]}, selector="max.accuracy")
    uids["sweep"] = runner.run(task).uid
    uids["pipeline"] = pipelines(wait=True).uid
    uids["live"] = pipelines(wait=False).uid
    return uids


def pipelines(wait: bool):
    """Run the demo pipeline: prepare, a map over folds, evaluate, a conditional deploy."""
    from mlflowlet import pipeline, step
    from mlflowlet.pipelines.refs import collect, condition

    @step
    def prepare(rows: int = 1000) -> list:
        return [0, 1, 2, 3]

    @step
    def train_fold(fold: int = 0) -> float:
        if not wait and fold == 2:
            GATE.wait(120)  # the live screenshot catches this fold running
        return 0.8 + fold / 100

    @step
    def evaluate(scores: list) -> float:
        return sum(scores) / len(scores)

    @step
    def deploy(score: float = 0.0) -> str:
        return f"deployed at {score:.3f}"

    @pipeline(name="churn-training")
    def churn(rows: int = 1000):
        folds = prepare(rows=rows)
        trained = train_fold.map(folds.results["return"], item_param="fold", parallel=2)
        score = evaluate(scores=collect(trained.results["return"]))
        with condition(score.results["return"] > 0.5):
            deploy(score=score.results["return"])

    return churn.run(project="churn", wait=wait, max_parallel=2)


def shoot(url: str, uids: dict, out: Path) -> None:
    """Log in and photograph each page."""
    from playwright.sync_api import sync_playwright

    pages = [
        ("ui-runs.png", "/"),
        ("ui-run.png", f"/runs/{uids['train']}?project=churn"),
        ("ui-compare.png", "/compare?" + "&".join(f"uid={u}" for u in uids["compare"])),
        ("ui-sweep.png", f"/runs/{uids['sweep']}/iterations?project=churn"),
        ("ui-pipeline.png", f"/pipelines/{uids['pipeline']}?project=churn"),
        ("ui-pipeline-live.png", f"/pipelines/{uids['live']}?project=churn"),
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.goto(url + "/")
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("#runs-table")
        for name, path in pages:
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / name), full_page=name != "ui-run.png")
            print(f"wrote docs/{name}")
        browser.close()


def main() -> int:
    """Record, serve, photograph; the images land in docs/."""
    if not os.path.exists(CHROMIUM):
        print(f"{CHROMIUM} is missing: run scripts/test-deps.sh", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="mlflowlet-docs-")
    os.environ["MLFLOWLET_DBPATH"] = work
    os.chdir(work)
    try:
        from mlflowlet.db import get_run_db
        from mlflowlet.server._uvicorn import ThreadedServer
        from mlflowlet.server.app import create_app

        uids = record(work)
        db = get_run_db()
        with ThreadedServer(create_app(db, token=TOKEN)) as server:
            DOCS.mkdir(exist_ok=True)
            shoot(server.url, uids, DOCS)
        GATE.set()
    finally:
        GATE.set()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
