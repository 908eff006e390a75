"""The Kubernetes fakes' answers have the real API's shape (``_k8s_fakes`` builds them from the
official client models; no API server can run here)."""

from __future__ import annotations

import pytest

pytest.importorskip("kubernetes")

from _k8s_fakes import event, job_condition, model, pod_json  # noqa: E402


def test_a_synthesised_field_the_api_does_not_have_is_refused():
    with pytest.raises(ValueError, match=r"V1PodList has fields the API does not: "
                                         r"\['\.items\[0\]\.status\.phaze'\]"):
        model({"items": [{"metadata": {"name": "p"}, "status": {"phaze": "Running"}}]},
              "V1PodList")
    with pytest.raises(ValueError, match=r"V1ContainerStateTerminated .*\['\.exit_reason'\]"):
        pod_json("p", "Failed", terminated={"exitCode": 1, "exit_reason": "Error"})
    with pytest.raises(ValueError, match="exit_code"):  # a field the API requires
        pod_json("p", "Failed", terminated={"reason": "Error"})


def test_synthesised_answers_deserialise_into_the_client_models():
    pods = model({"items": [pod_json("j-0", "Failed", 2, job="j",
                                     terminated={"exitCode": 137, "reason": "OOMKilled"})]},
                 "V1PodList")
    (pod,) = pods.items
    assert pod.metadata.annotations == {"batch.kubernetes.io/job-completion-index": "2"}
    assert pod.metadata.labels == {"job-name": "j"}
    assert pod.status.container_statuses[0].state.terminated.exit_code == 137
    (ev,) = model({"items": [event("j-0", "FailedScheduling", "no nodes")]},
                  "CoreV1EventList").items
    assert (ev.involved_object.name, ev.reason, ev.last_timestamp.year) == (
        "j-0", "FailedScheduling", 2024)
    cond = model(job_condition("Failed", reason="DeadlineExceeded"), "V1JobCondition")
    assert (cond.type, cond.status, cond.reason) == ("Failed", "True", "DeadlineExceeded")
