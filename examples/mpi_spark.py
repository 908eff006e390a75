"""The same handler as a Kubeflow MPIJob (Horovod style) and as a SparkApplication.

    python mpi_spark.py            # dry run: prints both manifests, nothing is submitted

`kind='mpijob'` runs `mpirun ... python -m mlflowlet.entrypoint` in the launcher, with workers
holding the limits (rank 0 records the run); `kind='spark'` submits a SparkApplication for the
Spark operator (or, with `master='local[*]'` and pyspark installed, runs locally with
`context.spark`). Both manifests are validated against the operators' CRD schemas in the tests.
"""

from __future__ import annotations

import yaml

from mlflowlet import new_runner, new_task

IMAGE = "ghcr.io/team/train:1.0"


def main() -> None:
    task = new_task(name="train", params={"p1": 4})
    mpi = new_runner(kind="mpijob", image=IMAGE, command="training.py", replicas=2,
                     slots_per_worker=1)
    mpi.with_limits(cpu="2", memory="4Gi")
    print(yaml.safe_dump(mpi.run(task, dry_run=True), sort_keys=False))
    print("---")
    spark = new_runner(kind="spark", image=IMAGE, command="training.py", executors=2)
    print(yaml.safe_dump(spark.run(task, dry_run=True), sort_keys=False))


if __name__ == "__main__":
    main()
