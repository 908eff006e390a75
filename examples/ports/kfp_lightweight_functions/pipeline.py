"""Port of the Kubeflow Pipelines SDK test pipeline ``lightweight_python_functions_pipeline``.

Original: https://github.com/kubeflow/pipelines/blob/master/sdk/python/test_data/pipelines/lightweight_python_functions_pipeline.py

In KFP you declare ``Output[Dataset]`` / ``OutputPath(Dict[str, int])`` parameters and write
files; in mlflowlet ``@step(outputs={"output_dataset_one": "dataset", ...})`` (the same artifact
types) with ``context.log_artifact`` for artifacts and a returned dict for the typed parameter
outputs (``str``, ``bool``, ``dict[str, int]``, ``list[str]``).
"""

from __future__ import annotations

from mlflowlet import DataItem, pipeline, step


@step(outputs={"output_dataset_one": "dataset", "output_dataset_two_path": "dataset"})
def preprocess(
    context,
    message: str,
    input_dict_parameter: dict[str, int],
    input_list_parameter: list[str],
) -> dict:
    """Dummy preprocessing step."""
    context.log_artifact("output_dataset_one", body=message, format="txt")
    context.log_artifact("output_dataset_two_path", body=message, format="txt")
    return {
        "output_parameter_path": message,
        "output_bool_parameter_path": True,
        "output_dict_parameter_path": input_dict_parameter,
        "output_list_parameter_path": input_list_parameter,
    }


@step(outputs={"model": "model"})
def train(
    context,
    dataset_one_path: DataItem,
    dataset_two: DataItem,
    message: str,
    input_bool: bool,
    input_dict: dict[str, int],
    input_list: list[str],
    num_steps: int = 100,
) -> None:
    """Dummy Training step."""
    dataset_one_contents = dataset_one_path.get().decode()
    dataset_two_contents = dataset_two.get().decode()
    line = (
        f"dataset_one_contents: {dataset_one_contents} || "
        f"dataset_two_contents: {dataset_two_contents} || "
        f"message: {message} || "
        f"input_bool: {input_bool}, type {type(input_bool)} || "
        f"input_dict: {input_dict}, type {type(input_dict)} || "
        f"input_list: {input_list}, type {type(input_list)} \n"
    )
    body = "".join(f"Step {i}\n{line}\n=====\n" for i in range(num_steps))
    # the original sets model.metadata['accuracy'] = 0.9 on its Model artifact
    context.log_model("model", body=body, model_file="model.txt", metrics={"accuracy": 0.9})


@pipeline(name="my-test-pipeline-beta")
def lightweight_pipeline(message: str, input_dict: dict[str, int] = {"A": 1, "B": 2}):  # noqa: B006
    """Pass artifacts and typed parameters from one step to the next."""
    preprocess_task = preprocess(
        message=message,
        input_dict_parameter=input_dict,
        input_list_parameter=["a", "b", "c"],
    )
    train(
        dataset_one_path=preprocess_task.outputs["output_dataset_one"],
        dataset_two=preprocess_task.outputs["output_dataset_two_path"],
        message=preprocess_task.results["output_parameter_path"],
        input_bool=preprocess_task.results["output_bool_parameter_path"],
        input_dict=preprocess_task.results["output_dict_parameter_path"],
        input_list=preprocess_task.results["output_list_parameter_path"],
    )
