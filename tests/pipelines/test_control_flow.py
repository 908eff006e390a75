import pytest

from mlflowlet import DataItem, collect, condition, get_run_db, pipeline, step

EXITS: list[str] = []


@step
def score(context, value: float = 0.95) -> float:
    context.log_result("accuracy", value)
    return value


@step
def deploy(context, accuracy: float) -> str:
    return f"deployed at {accuracy}"


@step
def after_deploy(context, note: str) -> str:
    return note.upper()


@step
def always(context) -> str:
    return "ran"


@pipeline
def gated(value: float = 0.95, enabled: bool = True):
    s = score(value=value)
    with condition((s.results["accuracy"] >= 0.9) & (enabled == True)):  # noqa: E712
        d = deploy(accuracy=s.results["accuracy"])
        after_deploy(note=d.output)
    with condition((s.results["accuracy"] < 0.5) | (enabled == False)):  # noqa: E712
        deploy(accuracy=0.0)
    always().after(d)


@step
def shards(context, n: int = 3) -> list:
    return [f"part-{i}" for i in range(n)]


@step(outputs=["piece"])
def process(context, shard: str, scale: int = 1):
    context.log_result("size", len(shard) * scale)
    return shard.encode()


@step
def gather(context, sizes: list, pieces: list) -> dict:
    return {"sizes": sizes, "pieces": [p.get().decode() for p in pieces],
            "kinds": sorted({type(p).__name__ for p in pieces})}


@pipeline
def fan(n: int = 3):
    s = shards(n=n)
    m = process.map(items=s.output, item_param="shard", scale=2, parallel=2)
    gather(sizes=collect(m.results["size"]), pieces=collect(m.outputs["piece"]))


@pipeline
def fan_literal():
    m = process.map(items=["a", "bb"], item_param="shard")
    gather(sizes=collect(m.results["size"]), pieces=collect(m.outputs["piece"]))


@step
def picky(context, shard: str):
    if shard == "part-1":
        raise ValueError("cannot process part-1")
    return shard


@pipeline
def fan_fails():
    m = picky.map(items=shards(n=3).output, item_param="shard")
    gather(sizes=collect(m.results["return"]), pieces=[])


@step(outputs=["model"])
def train(context, lr: float = 0.1, depth: int = 1):
    context.log_result("accuracy", round(1 - abs(lr - 0.2), 3))
    context.log_artifact("model", body=f"lr={lr} depth={depth}".encode(), format="txt")


@step
def use_model(context, model: DataItem, accuracy: float) -> str:
    return f"{model.get().decode()} acc={accuracy}"


@pipeline
def tuned(depth: int = 2):
    t = train.with_hyper_params({"lr": [0.1, 0.2, 0.4]}, selector="max.accuracy")(depth=depth)
    use_model(model=t.outputs["model"], accuracy=t.results["accuracy"])


@step
def notify(context, state: str) -> str:
    EXITS.append(state)
    return state


@step
def fail(context):
    raise RuntimeError("broken step")


@pipeline(on_exit=notify)
def with_exit(broken: bool = False):
    with condition(broken == True):  # noqa: E712
        fail()
    always()


def test_true_condition_runs_and_false_condition_skips(dbdir):
    run = gated.run(value=0.95)
    states = {name: r.state for name, r in run.steps.items()}
    assert states == {"score": "completed", "deploy": "completed", "after_deploy": "completed",
                      "deploy-2": "skipped", "always": "completed"}
    assert run.state == "completed"
    assert run.steps["after_deploy"].results["return"] == "DEPLOYED AT 0.95"
    assert "is false" in run.run.status.steps["deploy-2"]["reason"]


def test_false_condition_skips_the_block_and_data_dependents_but_not_ordering(dbdir):
    run = gated.run(value=0.3)
    states = {name: r.state for name, r in run.steps.items()}
    assert states["deploy"] == "skipped" and states["after_deploy"] == "skipped"
    assert states["deploy-2"] == "completed"  # the `|` branch
    assert states["always"] == "completed"  # only ordered after a skipped step
    assert run.state == "completed"


def test_condition_on_a_pipeline_parameter(dbdir):
    run = gated.run(value=0.95, enabled=False)
    assert run.steps["deploy"].state == "skipped" and run.steps["deploy-2"].state == "completed"


def test_map_fans_out_and_collect_gathers_in_item_order(dbdir):
    run = fan.run(n=3)
    assert run.state == "completed", run.error
    out = run.steps["gather"].results
    assert out["sizes"] == [12, 12, 12]
    assert out["pieces"] == ["part-0", "part-1", "part-2"] and out["kinds"] == ["DataItem"]
    items = get_run_db().list_runs(uid=run.steps["process"].uid, iter=True)
    assert sorted(r["metadata"]["iteration"] for r in items) == [0, 1, 2, 3]
    assert sorted(r["spec"]["params"].get("shard") for r in items if r["metadata"]["iteration"]) \
        == ["part-0", "part-1", "part-2"]


def test_map_over_an_empty_list_collects_nothing(dbdir):
    run = fan.run(n=0)
    assert run.state == "completed" and run.steps["process"].state == "completed"
    assert run.steps["gather"].results["sizes"] == []


def test_map_over_a_literal_list(dbdir):
    run = fan_literal.run()
    assert run.steps["gather"].results["pieces"] == ["a", "bb"]


def test_a_failed_item_fails_the_map_and_skips_the_collector(dbdir):
    run = fan_fails.run(max_parallel=1)
    assert run.steps["picky"].state == "error" and run.steps["gather"].state == "skipped"
    assert run.state == "error"


def test_hyper_step_passes_its_best_iteration_downstream(dbdir):
    run = tuned.run(depth=3)
    assert run.state == "completed", run.error
    best = run.steps["train"]
    assert best.results["best_iteration"] == 2 and best.results["accuracy"] == 1.0
    assert run.steps["use_model"].results["return"] == "lr=0.2 depth=3 acc=1.0"
    model_row = [r for r in run.lineage() if r["output"] == "model"][0]
    assert model_row["producer_iter"] == 2 and model_row["producer_uid"] == best.uid


@pytest.mark.parametrize("broken, state", [(False, "completed"), (True, "error")])
def test_exit_handler_runs_last_with_the_pipeline_state(dbdir, broken, state):
    EXITS.clear()
    run = with_exit.run(broken=broken)
    assert run.state == state and EXITS == [state]
    assert list(run.steps)[-1] == "notify"
    assert run.steps["notify"].metadata.labels["exit_handler"] == "true"
