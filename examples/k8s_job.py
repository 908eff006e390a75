"""Run the training handler as a Kubernetes Job, and a sweep as one Indexed Job.

    python k8s_job.py              # dry run: prints the manifests (Secret values redacted)
    python k8s_job.py --build      # builds the image: this mlflowlet and training.py (--dry-run:
                                   # write the Dockerfile and context only)
    python k8s_job.py --submit     # submits to the cluster of KUBECONFIG and follows the pods

The image must hold mlflowlet and ``training.py`` in its working directory: ``--build`` makes
one with ``runner.build_image()``, which copies the runner's script to ``/mlflowlet/training.py``
(the Job's working directory). The secret below travels in a Kubernetes Secret referenced by
``secretKeyRef``: its value is in neither the Job manifest nor the run DB. The sweep's spec is
mounted from a ConfigMap, ten pods run at once. Results come back through ``MLFLOWLET_DBPATH``
when the run DB is an ``mlflowlet server`` the pods reach (set ``dbpath=``), else from each
pod's last log line or termination message.
"""

from __future__ import annotations

import sys

import yaml

from mlflowlet import new_runner, new_task

IMAGE = "ghcr.io/team/train:1.0"


def main(args: list[str]) -> None:
    runner = new_runner(command=f"job://{IMAGE}#training.py", namespace="default",
                        ttl_seconds_after_finished=3600)
    runner.with_limits(cpu="2", memory="4Gi").with_requests(cpu="1", memory="2Gi")
    runner.set_env("OMP_NUM_THREADS", "2").with_node_selector(pool="cpu")
    if "--build" in args:
        result = runner.build_image(dry_run="--dry-run" in args, push="--push" in args)
        print(f"context: {result.context_dir}\nimage: {result.image_ref or result.image}")
        return
    task = (
        new_task(name="train", params={"p2": "x"})
        .with_secrets("inline", {"ACCESS_KEY": "not-a-real-key"})
        .with_hyper_params({"p1": [1, 3, 5]}, selector="max.accuracy")
    )
    if "--submit" not in args:
        runner.run(task, handler="my_job", dry_run=True)
        print(yaml.safe_dump_all(runner.last_manifests, sort_keys=False), end="")
        return
    run = runner.run(task, handler="my_job")
    print(run.state, run.status.results)


if __name__ == "__main__":
    main(sys.argv[1:])
