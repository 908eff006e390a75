"""Fakes of the Kubernetes API the job runtimes call, answering with *synthesised* responses.

No Kubernetes API server can run on these machines, so these are fakes (named ``Fake*``) and their
answers are synthesised, not recorded from a cluster. Every answer is built from the official
``kubernetes`` client models (``V1Pod``, ``V1Job``, ``V1JobCondition``, ``CoreV1Event``, ...), whose
constructors enforce the API's required fields, serialised with
``ApiClient().sanitize_for_serialization`` into the API's JSON shape, and handed to the runtime as
the client hands over a server's answer (``ApiClient().deserialize``). :func:`model` refuses JSON
with a field the API type does not have, so a hand-written dict cannot drift from the real shape.

``FakeBatchV1Api`` / ``FakeCoreV1Api`` / ``FakeCustomObjectsApi`` share a ``FakeCluster``: the
created objects, and the pod "frames" each ``list_namespaced_pod`` call returns in turn. With
``kubelet=True`` the cluster runs each pod's container command for real (a local subprocess with
the pod's environment, secretKeyRefs resolved from the created Secret, ``JOB_COMPLETION_INDEX`` for
Indexed Jobs) and serves its output as the pod log.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
import sys

import urllib3
from kubernetes import client as k8s
from kubernetes.client import ApiClient


class _Answer:
    def __init__(self, data):
        self.data = json.dumps(data)


def serialise(obj) -> dict:
    """Return a kubernetes model object as the API's JSON (camelCase keys, no unset fields)."""
    return ApiClient().sanitize_for_serialization(obj)


def _dropped(sent, kept, path="") -> list[str]:
    """The paths of keys in ``sent`` that did not survive the model round trip."""
    if isinstance(sent, dict) and isinstance(kept, dict):
        return [p for key, value in sent.items() if value is not None
                for p in ([f"{path}.{key}"] if key not in kept
                          else _dropped(value, kept[key], f"{path}.{key}"))]
    if isinstance(sent, list) and isinstance(kept, list):
        pairs = enumerate(zip(sent, kept, strict=False))
        return [p for i, (a, b) in pairs for p in _dropped(a, b, f"{path}[{i}]")]
    return []


def model(data, type_name):
    """Deserialise API JSON into a kubernetes model exactly as the client does.

    Raises:
        ValueError: ``data`` has a field that ``type_name`` (or a nested type) does not have, or
            lacks a field the API requires: the synthesised answer is not the real API's shape.
    """
    obj = ApiClient().deserialize(_Answer(data), type_name)
    dropped = _dropped(data, serialise(obj))
    if dropped:
        raise ValueError(f"synthesised {type_name} has fields the API does not: {dropped}")
    return obj


def job_condition(type_, status="True", reason=""):
    """A Job condition (``Complete`` / ``Failed``) as the API returns it."""
    return serialise(k8s.V1JobCondition(type=type_, status=status, reason=reason or None))


def pod_json(name, phase, index=None, waiting=None, terminated=None, job="job",
             container="main"):
    """A pod of Job ``job`` as the API returns it.

    ``waiting`` / ``terminated`` are container state JSON (``{"exitCode": 137, "reason": ...}``),
    checked against ``V1ContainerStateWaiting`` / ``V1ContainerStateTerminated``.
    """
    annotations = {} if index is None else {"batch.kubernetes.io/job-completion-index": str(index)}
    statuses = []
    if waiting or terminated:
        state = k8s.V1ContainerState(
            waiting=model(waiting, "V1ContainerStateWaiting") if waiting else None,
            terminated=model(terminated, "V1ContainerStateTerminated") if terminated else None)
        statuses = [k8s.V1ContainerStatus(name=container, image="repo/img:tag", image_id="",
                                          ready=False, restart_count=0, state=state)]
    pod = k8s.V1Pod(
        api_version="v1", kind="Pod",
        metadata=k8s.V1ObjectMeta(name=name, namespace="default", annotations=annotations,
                                  labels={"job-name": job}),
        status=k8s.V1PodStatus(phase=phase, container_statuses=statuses))
    return serialise(pod)


class FakeCluster:
    def __init__(self, workdir=".", kubelet=False, frames=None, final=None, events=(),
                 logs=None):
        self.workdir, self.kubelet = workdir, kubelet
        self.frames = list(frames or [[]])
        # the Job condition shown once the last frame was listed (checked against V1JobCondition)
        self.final = None if final is None else serialise(model(final, "V1JobCondition"))
        self.events = list(events)
        self.logs = dict(logs or {})
        self.tick = 0
        self.jobs, self.secrets, self.patches, self.deleted, self.custom = {}, {}, [], [], {}
        self.log_calls = []

    # the fake kubelet ----------------------------------------------------------------------------
    def start(self, job_name, pod_spec, completions, indexed):
        container = pod_spec["containers"][0]
        pending, running, done, ok = [], [], [], True
        for index in range(completions):
            name = f"{job_name}-{index}-abcde"
            env = self._env(container)
            if indexed:
                env["JOB_COMPLETION_INDEX"] = str(index)
            argv = [sys.executable if a == "python" else a for a in container["command"]]
            proc = subprocess.run(argv, cwd=self.workdir, env=env, capture_output=True,
                                  timeout=120)
            self.logs[name] = proc.stdout + proc.stderr
            idx = index if indexed else None
            phase = "Succeeded" if proc.returncode == 0 else "Failed"
            ok = ok and proc.returncode == 0
            term = {"exitCode": proc.returncode, "reason": "Completed" if ok else "Error"}
            pending.append(pod_json(name, "Pending", idx, job=job_name))
            running.append(pod_json(name, "Running", idx, job=job_name))
            done.append(pod_json(name, phase, idx, terminated=term, job=job_name))
        self.frames = [pending, running, done]
        self.final = job_condition("Complete" if ok else "Failed",
                                   reason="" if ok else "FailedIndexes")

    def _env(self, container):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
        env.pop("PYTHONPATH", None)
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self.secrets[ref["name"]]["stringData"][ref["key"]]
        return env

    def next_pods(self):
        frame = self.frames[min(self.tick, len(self.frames) - 1)]
        self.tick += 1
        return model({"items": frame}, "V1PodList")

    def condition(self):
        if self.final is None or self.tick < len(self.frames):
            return []
        return [self.final]


class FakeBatchV1Api:
    def __init__(self, cluster):
        self.cluster = cluster

    def create_namespaced_job(self, namespace, body, **kw):
        name = body["metadata"]["name"]
        self.cluster.jobs[name] = (body, kw)
        spec = body["spec"]
        if self.cluster.kubelet and not kw.get("dry_run"):
            self.cluster.start(name, spec["template"]["spec"], spec.get("completions") or 1,
                               spec.get("completionMode") == "Indexed")
        return model({**body, "metadata": {**body["metadata"], "uid": "uid-of-" + name}}, "V1Job")

    def read_namespaced_job_status(self, name, namespace):
        if ("Job", name, "Background") in self.cluster.deleted:
            from kubernetes.client import ApiException

            raise ApiException(status=404, reason="Not Found")
        body = self.cluster.jobs[name][0]
        return model({**body, "status": {"conditions": self.cluster.condition()}}, "V1Job")

    def delete_namespaced_job(self, name, namespace, **kw):
        self.cluster.deleted.append(("Job", name, kw.get("propagation_policy")))


class FakeCoreV1Api:
    def __init__(self, cluster):
        self.cluster = cluster

    def create_namespaced_secret(self, namespace, body, **kw):
        self.cluster.secrets[body["metadata"]["name"]] = body
        return model(body, "V1Secret")

    def create_namespaced_config_map(self, namespace, body, **kw):
        self.cluster.config_maps = {**getattr(self.cluster, "config_maps", {}),
                                    body["metadata"]["name"]: body}
        return model(body, "V1ConfigMap")

    def patch_namespaced_secret(self, name, namespace, body):
        self.cluster.patches.append((name, body))

    def delete_namespaced_secret(self, name, namespace, **kw):
        self.cluster.deleted.append(("Secret", name, kw.get("propagation_policy")))

    def list_namespaced_pod(self, namespace, label_selector=""):
        self.cluster.selector = label_selector
        return self.cluster.next_pods()

    def read_namespaced_pod_log(self, name, namespace, container=None, follow=False,
                                _preload_content=True):
        self.cluster.log_calls.append((name, container, follow))
        body = self.cluster.logs.get(name, b"")
        return urllib3.HTTPResponse(body=io.BytesIO(body), preload_content=False)

    def list_namespaced_event(self, namespace, field_selector=""):
        name = field_selector.split("=", 1)[1]
        items = [e for e in self.cluster.events if e["involvedObject"]["name"] == name]
        return model({"items": items}, "CoreV1EventList")


class FakeCustomObjectsApi:
    """Custom resources (MPIJob, SparkApplication): ``status`` dicts shown in turn."""

    def __init__(self, cluster, statuses):
        self.cluster, self.statuses = cluster, list(statuses)

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **kw):
        self.cluster.custom[body["metadata"]["name"]] = (group, version, plural, body)
        return {**body, "metadata": {**body["metadata"], "uid": "uid-1"}}

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        body = self.cluster.custom[name][3]
        status = self.statuses[min(self.cluster.tick, len(self.statuses) - 1)]
        return {**body, "status": status}

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, **kw):
        self.cluster.deleted.append((plural, name, kw.get("propagation_policy")))


def event(name, reason, message, stamp="2024-01-01T00:00:00Z"):
    """An event about pod ``name`` as the API returns it."""
    return serialise(k8s.CoreV1Event(
        metadata=k8s.V1ObjectMeta(name=f"{name}.1"),
        involved_object=k8s.V1ObjectReference(name=name, kind="Pod"),
        reason=reason, message=message,
        last_timestamp=datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))))
