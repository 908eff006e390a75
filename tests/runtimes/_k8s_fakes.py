"""Recorded-response fakes of the Kubernetes API objects the job runtimes call (no cluster here).

``FakeBatchV1Api`` / ``FakeCoreV1Api`` / ``FakeCustomObjectsApi`` answer with real ``kubernetes``
model objects, deserialized by the client itself from API-shaped JSON (as it does with a server's
answers). A ``FakeCluster`` holds what they share: created objects, and the pod "frames" each
``list_namespaced_pod`` call returns in turn. With ``kubelet=True`` the cluster runs each pod's
container command for real (a local subprocess with the pod's environment, secretKeyRefs resolved
from the created Secret, ``JOB_COMPLETION_INDEX`` for Indexed Jobs) and serves its output as the
pod log.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import urllib3
from kubernetes.client import ApiClient


class _Answer:
    def __init__(self, data):
        self.data = json.dumps(data)


def model(data, type_name):
    """Deserialize API JSON into a kubernetes model, exactly as the client does."""
    return ApiClient().deserialize(_Answer(data), type_name)


def pod_json(name, phase, index=None, waiting=None, terminated=None, job="job",
             container="main"):
    """A pod as the API returns it; ``waiting``/``terminated`` are container state dicts."""
    state = {}
    if waiting:
        state["waiting"] = waiting
    if terminated:
        state["terminated"] = terminated
    annotations = {} if index is None else {"batch.kubernetes.io/job-completion-index": str(index)}
    statuses = [{"name": container, "image": "repo/img:tag", "imageID": "", "ready": False,
                 "restartCount": 0, "state": state}] if state else []
    return {"metadata": {"name": name, "namespace": "default", "annotations": annotations,
                         "labels": {"job-name": job}},
            "status": {"phase": phase, "containerStatuses": statuses}}


class FakeCluster:
    def __init__(self, workdir=".", kubelet=False, frames=None, final=None, events=(),
                 logs=None):
        self.workdir, self.kubelet = workdir, kubelet
        self.frames = list(frames or [[]])
        self.final = final  # the Job condition shown once the last frame was listed
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
            argv = self._mount_config_maps(pod_spec, container, argv)
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
        self.final = {"type": "Complete" if ok else "Failed", "status": "True",
                      "reason": "" if ok else "FailedIndexes"}

    def _mount_config_maps(self, pod_spec, container, argv):
        """Write each mounted ConfigMap's keys as files (as a kubelet does), under workdir."""
        volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            source = volumes.get(mount["name"], {}).get("configMap")
            if source is None:
                continue
            folder = os.path.join(str(self.workdir), ".kubelet" + mount["mountPath"])
            os.makedirs(folder, exist_ok=True)
            for key, text in getattr(self, "config_maps", {})[source["name"]]["data"].items():
                with open(os.path.join(folder, key), "w", encoding="utf-8") as fh:
                    fh.write(text)
            argv = [folder + a[len(mount["mountPath"]):]
                    if a.startswith(mount["mountPath"] + "/") else a for a in argv]
        return argv

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

    def patch_namespaced_config_map(self, name, namespace, body):
        self.cluster.patches.append((name, body))

    def delete_namespaced_config_map(self, name, namespace, **kw):
        self.cluster.deleted.append(("ConfigMap", name, kw.get("propagation_policy")))

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
    return {"metadata": {"name": f"{name}.1"}, "involvedObject": {"name": name, "kind": "Pod"},
            "reason": reason, "message": message, "lastTimestamp": stamp}
