"""Port of the Kubeflow Pipelines SDK test pipeline ``two_step_pipeline``.

Original: https://github.com/kubeflow/pipelines/blob/master/sdk/python/test_data/pipelines/two_step_pipeline.py

In KFP a component writes ``{outputUri: output_gcs_path}`` with ``gsutil cp`` and the next reads
``{inputUri: ...}``; in mlflowlet the producer logs an artifact output and the consumer gets it
as a ``DataItem``. (``set_display_name('Producer')`` has no counterpart; the UI shows step names.)
"""

from __future__ import annotations

from mlflowlet import DataItem, pipeline, step


@step(outputs=["output_gcs_path"])
def write_to_gcs(context, text: str) -> None:
    """Write the text to the output artifact (``echo "$0" | gsutil cp - "$1"``)."""
    context.log_artifact("output_gcs_path", body=text + "\n", format="txt")


@step
def read_from_gcs(input_gcs_path: DataItem) -> None:
    """Print the artifact (``gsutil cat "$0"``)."""
    print(input_gcs_path.get().decode(), end="")


@pipeline(name="simple-two-step-pipeline")
def my_pipeline(text: str = "Hello world!"):
    """A producer and a consumer of one artifact."""
    component_1 = write_to_gcs(text=text)
    read_from_gcs(input_gcs_path=component_1.outputs["output_gcs_path"])
