from pathlib import Path

from mlflowlet import DataItem, get_run_db, pipeline, step


@step(outputs=["raw"])
def ingest(context, rows: int = 3):
    context.log_artifact("raw", body=b"r" * rows)


@step(outputs=["clean"])
def clean(context, raw: DataItem):
    context.log_result("rows", len(raw.get()))
    context.log_artifact("clean", body=raw.get().upper())


@step(outputs=["model"])
def fit(context, clean: DataItem, rows: int):
    context.log_artifact("model", body=b"m" + clean.get())


@step
def publish(context, model: DataItem) -> int:
    return len(model.get())


@pipeline
def chain(rows: int = 3):
    raw = ingest(rows=rows)
    c = clean(raw=raw.outputs["raw"])
    m = fit(clean=c.outputs["clean"], rows=c.results["rows"])
    publish(model=m.outputs["model"])


def test_one_lineage_row_per_edge_with_uris_hashes_and_params(dbdir):
    run = chain.run(rows=5)
    rows = run.lineage()
    edges = {(r["output"], r["consumer_param"]): r for r in rows}
    assert set(edges) == {("raw", "raw"), ("clean", "clean"), ("rows", "rows"),
                          ("model", "model")}
    raw = edges[("raw", "raw")]
    art = run.steps["ingest"].status.artifacts[0]
    assert raw["producer_uid"] == run.steps["ingest"].uid
    assert raw["consumer_uid"] == run.steps["clean"].uid
    assert raw["artifact_uri"] == art["uri"] and raw["artifact_hash"] == art["hash"]
    assert raw["artifact_key"] == "raw" and raw["pipeline_uid"] == run.uid
    clean = run.steps["clean"].status  # the edge is stamped when its consumer ends
    assert clean.start_time <= raw["time"] and raw["time"][:10] == clean.end_time[:10]
    assert Path(raw["artifact_uri"]).read_bytes() == b"rrrrr"
    scalar = edges[("rows", "rows")]
    assert scalar["artifact_uri"] == "" and scalar["producer_uid"] == run.steps["clean"].uid


def test_db_walks_lineage_upstream_and_downstream(dbdir):
    run = chain.run()
    db = get_run_db()
    up = db.list_lineage(run_uid=run.steps["publish"].uid, upstream=True)
    assert {r["producer_uid"] for r in up} == {run.steps[n].uid for n in ("ingest", "clean", "fit")}
    down = db.list_lineage(run_uid=run.steps["ingest"].uid, downstream=True)
    assert {r["consumer_uid"] for r in down} == {run.steps[n].uid
                                                 for n in ("clean", "fit", "publish")}
    by_key = db.list_lineage(artifact_key="clean")
    assert [r["consumer_uid"] for r in by_key] == [run.steps["fit"].uid]


def test_walks_from_an_artifact_keep_its_own_edges_and_go_on(dbdir):
    run = chain.run()
    db = get_run_db()
    down = db.list_lineage(artifact_key="clean", downstream=True)
    assert {(r["output"], r["consumer_uid"]) for r in down} == {
        ("clean", run.steps["fit"].uid), ("model", run.steps["publish"].uid)}
    up = db.list_lineage(artifact_key="clean", upstream=True)
    assert {(r["output"], r["producer_uid"]) for r in up} == {
        ("clean", run.steps["clean"].uid), ("raw", run.steps["ingest"].uid)}


def test_lineage_of_two_runs_stays_apart(dbdir):
    first, second = chain.run(rows=1), chain.run(rows=2)
    assert {r["pipeline_uid"] for r in first.lineage()} == {first.uid}
    assert {r["pipeline_uid"] for r in second.lineage()} == {second.uid}
