"""Run the training handler as a Kubernetes Job, and a sweep as one Indexed Job.

    python k8s_job.py              # dry run: prints the manifests (Secret values redacted)
    python k8s_job.py --submit     # submits to the cluster of KUBECONFIG and follows the pods

The image must hold mlflowlet and ``training.py`` in its working directory; build one with
``mlflowlet build ghcr.io/team/train:1.0 --code training.py`` (or ``mlflowlet.build.build_image``).
The secret below travels in a Kubernetes Secret referenced by ``secretKeyRef``: its value is in
neither the Job manifest nor the run DB. Results come back from the pod's last log line, or
through ``MLFLOWLET_DBPATH`` when the run DB is an ``mlflowlet server`` the pods can reach.
"""

from __future__ import annotations

import sys

import yaml

from mlflowlet import new_runner, new_task

IMAGE = "ghcr.io/team/train:1.0"


def main(submit: bool) -> None:
    runner = new_runner(command=f"job://{IMAGE}#training.py", namespace="default",
                        ttl_seconds_after_finished=3600)
    runner.with_limits(cpu="2", memory="4Gi").with_requests(cpu="1", memory="2Gi")
    runner.set_env("OMP_NUM_THREADS", "2").with_node_selector(pool="cpu")
    task = (
        new_task(name="train", params={"p2": "x"})
        .with_secrets("inline", {"ACCESS_KEY": "not-a-real-key"})
        .with_hyper_params({"p1": [1, 3, 5]}, selector="max.accuracy")
    )
    if not submit:
        runner.run(task, handler="my_job", dry_run=True)
        print(yaml.safe_dump_all(runner.last_manifests, sort_keys=False), end="")
        return
    run = runner.run(task, handler="my_job")
    print(run.state, run.status.results)


if __name__ == "__main__":
    main("--submit" in sys.argv[1:])
