"""Port of the Kubeflow Pipelines ``parallel_join`` sample.

Original: https://github.com/kubeflow/pipelines/blob/master/samples/core/parallel_join/parallel_join.py

In KFP two ``gsutil cat`` containers run in parallel and an ``echo`` container takes both
``.output`` s; in mlflowlet two ``gcs_download_op`` steps read their URL through a ``DataItem``
and return the text, and ``echo2_op`` takes both results.
"""

from __future__ import annotations

from mlflowlet import pipeline, step
from mlflowlet.datastore import get_dataitem


@step
def gcs_download_op(url: str) -> str:
    """Download a text and print it (``gsutil cat $0 | tee $1``)."""
    data = get_dataitem(url).get().decode()
    print(data, end="")
    return data


@step
def echo2_op(text1: str, text2: str) -> None:
    """Print both texts."""
    print(f"Text 1: {text1}")
    print(f"Text 2: {text2}")


@pipeline(name="parallel-pipeline")
def download_and_join(
    url1: str = "gs://ml-pipeline-playground/shakespeare1.txt",
    url2: str = "gs://ml-pipeline-playground/shakespeare2.txt",
):
    """A three-step pipeline with first two running in parallel."""
    download1_task = gcs_download_op(url=url1)
    download2_task = gcs_download_op(url=url2)
    echo2_op(text1=download1_task.output, text2=download2_task.output)
