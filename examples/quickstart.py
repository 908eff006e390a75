"""The quickstart `make demo` runs: a tracked handler, a hyper-parameter sweep, the recorded runs.

Everything lands in the embedded SQLite run DB of the current directory (./mlflowlet.db) and
artifacts under ./artifacts/.
"""

from handler import training

from mlflowlet import get_run_db, new_runner, new_task

# 1. one tracked run of a plain handler
run = new_runner().run(handler=training, params={"p1": 5})
print(f"run {run.uid}: {run.state}, results {run.results}")

# 2. a hyper-parameter sweep: one child run per value, the best selected by min.loss
task = new_task(name="training-sweep").with_hyper_params({"p1": [5, 2, 3]}, selector="min.loss")
sweep = new_runner().run(task, handler=training)
best = sweep.results["best_iteration"]
print(f"sweep {sweep.uid}: best iteration {best}, loss {sweep.results['loss']}")

# 3. a pipeline: data prep -> train (a small sweep) -> evaluate, each step a tracked child run
from train_eval import train_eval  # noqa: E402

pipe_run = train_eval.run(rows=200)
print(f"pipeline {pipe_run.uid}: {pipe_run.state}")
pipe_run.show()
print("lineage (producer.output -> consumer.param):")
for e in pipe_run.lineage():
    producer, consumer = e["producer_uid"][:8], e["consumer_uid"][:8]
    print(f"  {producer}.{e['output']} -> {consumer}.{e['consumer_param']}")

# 4. what the run DB recorded
db = get_run_db("./").connect()
db.list_runs("", iter=True).show()
db.list_artifacts("", tag="*").show()
