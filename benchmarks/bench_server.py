"""Server figures: REST throughput with 4 clients (SQLite and PostgreSQL), UI pages at scale
(100k runs, a 100k-iteration sweep, 10 metric series x 10,000 steps), remote round trip.

The run DB server runs in its own process (``python -m mlflowlet server``) so the clients in this
process do not share its interpreter lock; every address is on 127.0.0.1. Page times are medians
of 5 requests measured by the client (loopback), with the HTML size.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLIENTS = 4
PER_CLIENT = 250
UI_RUNS = 100_000
SWEEP = 100_000
SERIES, STEPS = 10, 10_000


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _start_server(db_dir: str) -> tuple[subprocess.Popen, str]:
    """Start ``mlflowlet server`` on ``db_dir`` (a directory or a database URL)."""
    from mlflowlet.server._uvicorn import free_port, wait_ready

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
    env["MLFLOWLET_API_TOKEN"] = "bench-token"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import logging, sys; from mlflowlet.cli import main; "
            "sys.argv=['mlflowlet','server','--port',sys.argv[1],'--db',sys.argv[2]]; main()",
            str(port),
            db_dir,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, timeout=60)
    return proc, url


def _hammer(url: str, work) -> tuple[float, list[float]]:
    import httpx

    latencies: list[float] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=url, headers={"authorization": "Bearer bench-token"}) as c:
            mine = []
            for i in range(PER_CLIENT):
                t0 = time.perf_counter()
                work(c, n, i)
                mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (CLIENTS * PER_CLIENT) / (time.perf_counter() - start), latencies


def _rest_rows(url: str) -> list[tuple[str, float, str, str]]:
    from mlflowlet.model import RunObject

    body = RunObject().to_dict()
    body["metadata"].update(project="bench", name="bench-run")
    body["status"].update(state="completed", results={"accuracy": 0.9})

    def store(c, n, i):
        c.put(f"/api/v1/runs/r{n}-{i}", params={"project": "bench"}, json=body).raise_for_status()

    def listing(c, n, i):
        c.get("/api/v1/runs", params={"project": "bench", "last": 50}).raise_for_status()

    rows = []
    for name, work in (("store_run", store), ("list_runs (last 50)", listing)):
        rps, lat = _hammer(url, work)
        rows.append((f"server {name}, {CLIENTS} clients", rps, "req/s", "report"))
        rows.append((f"server {name} p99 latency", _p99(lat) * 1000, "ms", "report"))
    return rows


def _fill(db_path: str, count: int) -> None:
    from mlflowlet.db.sqlite import SQLiteRunDB
    from mlflowlet.model import RunObject

    db = SQLiteRunDB(db_path)
    base = RunObject().to_dict()
    with db._write() as conn:
        for i in range(count):
            run = json.loads(json.dumps(base))
            run["metadata"].update(
                uid=f"u{i:06d}", name=f"train-{i % 7}", project="big", labels={"team": f"t{i % 5}"}
            )
            run["status"].update(
                state="completed" if i % 9 else "error",
                start_time=f"2024-01-01T00:00:{i % 60:02d}.{i:06d}+00:00",
                results={"accuracy": (i % 100) / 100},
            )
            run["spec"]["params"] = {"lr": (i % 10) / 10}
            db._store_run(conn, run, run["metadata"]["uid"], "big", 0)
    db.close()


def _page(url: str, path: str) -> tuple[float, int]:
    """Return the median time (ms) of 5 GETs of a UI page and its size in bytes."""
    import httpx

    headers = {"authorization": "Bearer bench-token"}
    times, size = [], 0
    with httpx.Client(headers=headers, timeout=120) as client:
        client.get(url + path).raise_for_status()  # warm: templates, first query plans
        for _ in range(5):
            t0 = time.perf_counter()
            resp = client.get(url + path)
            resp.raise_for_status()
            times.append(time.perf_counter() - t0)
            size = len(resp.content)
    return statistics.median(times) * 1000, size


def _ui_rows(url: str, sweep_uid: str, metrics_uid: str) -> list[tuple[str, float, str, str]]:
    rows = []
    pages = [
        (f"UI runs page, {UI_RUNS:,} runs, first page", "/"),
        (f"UI runs page, {UI_RUNS:,} runs, filtered by label", "/?label=team%3Dt3"),
        (f"UI runs page, {UI_RUNS:,} runs, page 1000", "/?page=1000"),
        (
            f"UI sweep page, {SWEEP:,} iterations, page 1",
            f"/runs/{sweep_uid}/iterations?project=big",
        ),
        (
            f"UI sweep page, {SWEEP:,} iterations, page 500",
            f"/runs/{sweep_uid}/iterations?project=big&page=500",
        ),
        ("UI run page of that sweep", f"/runs/{sweep_uid}?project=big"),
        (
            f"UI run page, {SERIES} metric series x {STEPS:,} steps",
            f"/runs/{metrics_uid}?project=big",
        ),
    ]
    for label, path in pages:
        ms, size = _page(url, path)
        target = "< 300 ms" if "metric" in label else "< 200 ms, < 500 KB"
        rows.append((label, ms, f"ms, {size / 1024:.0f} KB", target))
    return rows


def _render_rows(url: str, paths: list[tuple[str, str]]) -> list[tuple[str, float, str, str]]:
    """Time pages in headless Chromium, from navigation to the load event (median of 3)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return [("browser render: not measured (playwright missing)", 0.0, "", "< 1000 ms")]
    if not os.path.exists("/usr/bin/chromium"):
        return [("browser render: not measured (/usr/bin/chromium missing)", 0.0, "", "< 1000 ms")]
    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu"],
        )
        context = browser.new_context()
        context.add_cookies([{"name": "mlflowlet_token", "value": "bench-token", "url": url}])
        page = context.new_page()
        for label, path in paths:
            page.goto(url + path)  # warm
            times = []
            for _ in range(3):
                page.goto(url + path, wait_until="load")
                times.append(
                    page.evaluate(
                        "() => { const t = performance.getEntriesByType('navigation')[0];"
                        " return t.loadEventEnd - t.startTime; }"
                    )
                )
            rows.append((f"browser render: {label}", statistics.median(times), "ms", "< 1000 ms"))
        browser.close()
    return rows


def _fill_sweep(db_path: str) -> str:
    """Store a 100k-iteration sweep: the parent (with its iteration table) and every child."""
    from mlflowlet.db.sqlite import SQLiteRunDB
    from mlflowlet.model import RunObject

    db = SQLiteRunDB(db_path)
    uid = "sweep0000000000000000000000000001"
    table = [["iter", "state", "param.lr", "param.depth", "output.accuracy"]]
    base = RunObject().to_dict()
    with db._write() as conn:
        for i in range(1, SWEEP + 1):
            lr, depth, acc = (i % 97) / 100, i % 13, ((i * 7919) % 10007) / 10007
            table.append([i, "completed", lr, depth, acc])
            child = json.loads(json.dumps(base))
            child["metadata"].update(uid=uid, name="tune", project="big", iteration=i)
            child["spec"].update(params={"lr": lr, "depth": depth}, parent_uid=uid)
            child["status"].update(
                state="completed", results={"accuracy": acc}, start_time="2024-01-02T00:00:00+00:00"
            )
            db._store_run(conn, child, uid, "big", i)
        parent = json.loads(json.dumps(base))
        parent["metadata"].update(uid=uid, name="tune", project="big")
        parent["spec"]["selector"] = "max.accuracy"
        best = max(range(1, SWEEP + 1), key=lambda r: table[r][4])
        parent["status"].update(
            state="completed",
            iterations=table,
            results={"accuracy": table[best][4], "best_iteration": best},
            start_time="2024-01-02T00:00:00+00:00",
        )
        db._store_run(conn, parent, uid, "big", 0)
    db.close()
    return uid


def _fill_metrics(db_path: str) -> str:
    """Store a run logging 10 metric series of 10,000 steps each."""
    import math

    from mlflowlet.db.sqlite import SQLiteRunDB
    from mlflowlet.model import RunObject

    db = SQLiteRunDB(db_path)
    uid = "metrics00000000000000000000000001"
    run = RunObject().to_dict()
    run["metadata"].update(uid=uid, name="long-training", project="big")
    run["status"].update(state="completed", start_time="2024-01-03T00:00:00+00:00")
    db.store_run(run, uid, "big")
    rows = [
        (f"m{k}", s, math.sin(s / 50 + k) / (1 + s / 1000), float(s))
        for k in range(SERIES)
        for s in range(STEPS)
    ]
    db.store_metrics(uid, "big", 0, rows)
    db.close()
    return uid


def _postgres_rows() -> list[tuple[str, float, str, str]]:
    """store_run throughput with 4 clients on a server backed by a throwaway PostgreSQL."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    try:
        import psycopg  # noqa: F401
        from _postgres import PostgresCluster, _bindir  # the suite's own throwaway cluster
    except ImportError as exc:
        return [(f"server store_run on PostgreSQL: not measured ({exc})", 0.0, "", "report")]
    bindir = _bindir()
    if bindir is None:
        return [("server store_run on PostgreSQL: not measured (no initdb)", 0.0, "", "report")]
    cluster = PostgresCluster(bindir)
    cluster.start()
    try:
        proc, url = _start_server(cluster.create_database())
        try:
            return [
                (r[0].replace("server ", "server (PostgreSQL) "), *r[1:])
                for r in _rest_rows(url)[:2]
            ]
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        cluster.stop()


def _remote_rows() -> list[tuple[str, float, str, str]]:
    import httpx

    from mlflowlet.server._uvicorn import ThreadedServer
    from mlflowlet.server.serve import create_function_app, execute

    def noop(context, x: int = 1):
        return x

    body = {"spec": {"params": {"x": 2}}}
    local = []
    for _ in range(200):
        t0 = time.perf_counter()
        execute(noop, body)
        local.append(time.perf_counter() - t0)
    remote = []
    with ThreadedServer(create_function_app(noop, token="")) as srv, httpx.Client() as c:
        for _ in range(200):
            t0 = time.perf_counter()
            c.post(srv.url + "/", json=body).raise_for_status()
            remote.append(time.perf_counter() - t0)
    overhead = statistics.median(remote) - statistics.median(local)
    return [
        ("remote function round trip (median)", statistics.median(remote) * 1000, "ms", "report"),
        ("remote function HTTP overhead over in-process", overhead * 1000, "ms", "< 10 ms"),
    ]


def run() -> list[tuple[str, float, str, str]]:
    """Return the server figures."""
    rows: list[tuple[str, float, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _start_server(os.path.join(tmp, "rest"))
        try:
            rows += [(r[0].replace("server ", "server (SQLite) "), *r[1:]) for r in _rest_rows(url)]
        finally:
            proc.terminate()
            proc.wait(10)
        rows += _postgres_rows()
        big = os.path.join(tmp, "big")
        t0 = time.perf_counter()
        _fill(os.path.join(big, "mlflowlet.db"), UI_RUNS)
        sweep_uid = _fill_sweep(os.path.join(big, "mlflowlet.db"))
        metrics_uid = _fill_metrics(os.path.join(big, "mlflowlet.db"))
        rows.append(
            (
                f"fill {UI_RUNS:,} runs + {SWEEP:,}-iteration sweep + metrics",
                time.perf_counter() - t0,
                "s",
                "setup",
            )
        )
        proc, url = _start_server(big)
        try:
            rows += _ui_rows(url, sweep_uid, metrics_uid)
            rows += _render_rows(
                url,
                [
                    (
                        f"sweep page, {SWEEP:,} iterations",
                        f"/runs/{sweep_uid}/iterations?project=big",
                    ),
                    (f"runs page, {UI_RUNS:,} runs", "/"),
                    (
                        f"run page, {SERIES} x {STEPS:,} metric steps",
                        f"/runs/{metrics_uid}?project=big",
                    ),
                ],
            )
        finally:
            proc.terminate()
            proc.wait(10)
    rows += _remote_rows()
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row[0]:<55} {row[1]:>10.2f} {row[2]:<6} {row[3]}")
