"""Server figures: REST throughput with 4 clients, UI runs page with 100k runs, remote round trip.

The run DB server runs in its own process (``python -m mlflowlet server``) so the clients in this
process do not share its interpreter lock; every address is on 127.0.0.1.
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


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _start_server(db_dir: str) -> tuple[subprocess.Popen, str]:
    from mlflowlet.server._uvicorn import free_port, wait_ready

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
    env["MLFLOWLET_API_TOKEN"] = "bench-token"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import logging, sys; from mlflowlet.cli import main; "
         "sys.argv=['mlflowlet','server','--port',sys.argv[1],'--db',sys.argv[2]]; main()",
         str(port), db_dir], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
            run["metadata"].update(uid=f"u{i:06d}", name=f"train-{i % 7}", project="big",
                                   labels={"team": f"t{i % 5}"})
            run["status"].update(state="completed" if i % 9 else "error",
                                 start_time=f"2024-01-01T00:00:{i % 60:02d}.{i:06d}+00:00",
                                 results={"accuracy": (i % 100) / 100})
            run["spec"]["params"] = {"lr": (i % 10) / 10}
            db._store_run(conn, run, run["metadata"]["uid"], "big", 0)
    db.close()


def _ui_rows(url: str) -> list[tuple[str, float, str, str]]:
    import httpx

    headers = {"authorization": "Bearer bench-token"}
    rows = []
    for label, path in (("first page", "/"), ("filtered by label", "/?label=team%3Dt3"),
                        ("page 1000", "/?page=1000")):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            resp = httpx.get(url + path, headers=headers, timeout=60)
            resp.raise_for_status()
            times.append(time.perf_counter() - t0)
        rows.append((f"UI runs page, {UI_RUNS:,} runs, {label}", statistics.median(times) * 1000,
                     "ms", "< 1000 ms to first render"))
    return rows


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
    return [("remote function round trip (median)", statistics.median(remote) * 1000, "ms",
             "report"),
            ("remote function HTTP overhead over in-process", overhead * 1000, "ms", "< 10 ms")]


def run() -> list[tuple[str, float, str, str]]:
    """Return the server figures."""
    rows: list[tuple[str, float, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _start_server(os.path.join(tmp, "rest"))
        try:
            rows += _rest_rows(url)
        finally:
            proc.terminate()
            proc.wait(10)
        big = os.path.join(tmp, "big")
        t0 = time.perf_counter()
        _fill(os.path.join(big, "mlflowlet.db"), UI_RUNS)
        rows.append((f"fill {UI_RUNS:,} runs (one transaction)", time.perf_counter() - t0, "s",
                     "setup"))
        proc, url = _start_server(big)
        try:
            rows += _ui_rows(url)
        finally:
            proc.terminate()
            proc.wait(10)
    rows += _remote_rows()
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row[0]:<55} {row[1]:>10.2f} {row[2]:<6} {row[3]}")
