"""A plain script tracked by mlflowlet: `python training.py` or `mlflowlet run training.py`."""

from mlflowlet import get_or_create_ctx
from mlflowlet.artifacts import ChartArtifact, TableArtifact


def my_job():
    context = get_or_create_ctx("train")

    # params, with defaults recorded when not given
    p1 = context.get_param("p1", 1)
    p2 = context.get_param("p2", "a-string")
    context.logger.info(f"Run: {context.name} (uid={context.uid})")
    context.logger.info(f"Params: p1={p1}, p2={p2}")

    # secrets and inputs
    context.logger.info(f"access key is set: {context.get_secret('ACCESS_KEY') is not None}")
    if "infile.txt" in context.inputs:
        text = context.get_input("infile.txt").get().decode()
        context.logger.info(f"file\n{text}\n")

    # results, labels, artifacts
    context.log_result("accuracy", p1 * 2)
    context.log_result("loss", p1 * 3)
    context.set_label("framework", "sklearn")
    context.log_artifact("model.txt", body=b"abc is 123", labels={"framework": "xgboost"})
    context.log_artifact("results.html", body=b"<b> Some HTML <b>", viewer="web-app")
    context.log_artifact(
        TableArtifact("dataset.csv", "1,2,3\n4,5,6\n", viewer="table", header=["A", "B", "C"])
    )
    chart = ChartArtifact("chart.html")
    chart.header = ["Hyperparameter", "Accuracy"]
    for i in range(1, 8):
        chart.add_row([i, i / 20 + 0.75])
    context.log_artifact(chart)


if __name__ == "__main__":
    my_job()
