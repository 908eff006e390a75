"""Submit a compiled pipeline to Kubeflow Pipelines or an Argo Server; a handle to follow it.

* KFP: through ``kfp.Client`` (``create_run_from_pipeline_package``; with ``schedule=`` a
  recurring run, the 5-field cron given a leading seconds field as KFP expects).
* Argo: through the Argo Server REST API (``POST /api/v1/workflows/{namespace}``,
  ``/cron-workflows/...`` for a schedule, ``/workflow-templates/...`` for ``kind=``) with a
  bearer token (https://argo-workflows.readthedocs.io/en/latest/rest-api/), using the standard
  library only.

Both return a :class:`Submission`: ``status()``, ``wait()`` and ``url`` (the engine's UI page).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, RunError

if TYPE_CHECKING:
    from ..pipelines.pipeline import Pipeline

__all__ = ["Submission", "submit"]

DONE = {
    "Succeeded": "completed",
    "Failed": "error",
    "Error": "error",
    "SUCCEEDED": "completed",
    "FAILED": "error",
    "CANCELED": "aborted",
    "SKIPPED": "completed",
}


class Submission:
    """A submitted pipeline run (or schedule) on an engine.

    Attributes:
        target: ``kfp`` or ``argo``.
        id: the KFP run (or recurring run) id, or the Argo object's name.
        url: the engine UI's page for it.
        kind: ``run``, ``recurring-run``, ``Workflow``, ``CronWorkflow`` or ``WorkflowTemplate``.
    """

    def __init__(self, target: str, id: str, url: str, kind: str, poll: Any) -> None:
        self.target, self.id, self.url, self.kind = target, id, url, kind
        self._poll = poll

    def status(self) -> str:
        """Return the engine's current status (Argo phase / KFP state; ``''`` before it starts)."""
        return self._poll() if self._poll is not None else ""

    @property
    def state(self) -> str:
        """The status as mlflowlet says it: ``completed``, ``error``, ``aborted`` or ``running``."""
        return DONE.get(self.status(), "running")

    def wait(self, timeout: float | None = None, interval: float = 5.0) -> str:
        """Poll until the run ends; return its final engine status.

        Raises:
            TimeoutError: it did not end within ``timeout`` seconds.
            RunError: this submission is a schedule or template, which never ends.
        """
        if self._poll is None:
            raise RunError(f"{self.kind} {self.id!r} is not a run; it has nothing to wait for")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.status()
            if current in DONE:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.target} run {self.id} still {current or 'pending'} "
                    f"after {timeout}s; see {self.url}"
                )
            time.sleep(interval)  # polling a remote engine: nothing to wait on locally

    def __repr__(self) -> str:
        return f"<Submission {self.target} {self.kind} {self.id} {self.url}>"


def submit(
    pipe: Pipeline,
    target: str = "kfp",
    host: str = "",
    arguments: dict[str, Any] | None = None,
    experiment: str = "",
    run_name: str = "",
    token: str = "",
    namespace: str = "",
    image: str | None = None,
    verify_ssl: bool = True,
    **options: Any,
) -> Submission:
    """Compile ``pipe`` for ``target`` and submit it.

    Args:
        pipe: the ``@pipeline``.
        target: ``kfp`` or ``argo``.
        host: the KFP API endpoint, or the Argo Server URL (default: ``KFP_HOST`` /
            ``ARGO_SERVER`` from the environment).
        arguments: pipeline parameter values for this run.
        experiment: the KFP experiment (default ``Default``).
        run_name: the run's display name (KFP); Argo names runs from ``generateName``.
        token: bearer token (default: ``ARGO_TOKEN`` for Argo; KFP's ``existing_token``).
        namespace: the namespace (Argo default ``argo``; KFP multi-user namespace).
        image: the steps' default image.
        verify_ssl: verify the server's TLS certificate.
        **options: compile options (``schedule=`` makes a recurring run / CronWorkflow).

    Returns:
        A :class:`Submission`.

    Raises:
        ConfigError: no host, or the server refused the submission (its message included).
    """
    from . import compile as compile_pipeline

    if target not in ("kfp", "argo"):
        raise ConfigError(f"submit target {target!r}: use 'kfp' or 'argo'")
    env = "KFP_HOST" if target == "kfp" else "ARGO_SERVER"
    host = (host or os.environ.get(env, "")).rstrip("/")
    if not host:
        raise ConfigError(f"submit needs the {target} server: pass host=... or set {env}")
    from ._tracking import require_tracking
    from ._types import engine_arguments

    require_tracking(options)
    doc = compile_pipeline(pipe, target=target, image=image, **options)
    arguments = engine_arguments(pipe.dag, arguments or {}, target)
    if target == "kfp":
        return _submit_kfp(
            pipe,
            doc,
            host,
            arguments or {},
            experiment,
            run_name,
            token,
            namespace,
            verify_ssl,
            options.get("schedule", ""),
            options.get("service_account", ""),
        )
    return _submit_argo(
        doc,
        host,
        arguments or {},
        token or os.environ.get("ARGO_TOKEN", ""),
        namespace or "argo",
        verify_ssl,
    )


def _submit_kfp(
    pipe: Pipeline,
    doc: dict[str, Any],
    host: str,
    arguments: dict[str, Any],
    experiment: str,
    run_name: str,
    token: str,
    namespace: str,
    verify_ssl: bool,
    schedule: str,
    service_account: str,
) -> Submission:
    import warnings

    import kfp

    from . import to_yaml

    docs = [doc["pipeline_spec"], doc["platform_spec"]] if "pipeline_spec" in doc else [doc]
    from ._kfp_backend import check_backend

    check_backend(_probe_kfp(host, token, verify_ssl), pipe.dag, host)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2" notice
        client = _kfp_call(
            host,
            "connect",
            kfp.Client,
            host=host,
            existing_token=token or None,
            verify_ssl=verify_ssl,
            namespace=namespace or "kubeflow",
        )
    name = run_name or f"{pipe.dag.name}"
    with tempfile.TemporaryDirectory(prefix="mlflowlet-submit-") as tmp:
        path = os.path.join(tmp, "pipeline.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(to_yaml(docs))
        prefix = client._get_url_prefix()
        if schedule:
            exp = _kfp_call(
                host,
                "create the experiment",
                client.create_experiment,
                experiment or "Default",
                namespace=namespace or None,
            )
            cron = schedule if len(schedule.split()) == 6 else f"0 {schedule}"
            job = _kfp_call(
                host,
                "create the recurring run",
                client.create_recurring_run,
                exp.experiment_id,
                name,
                cron_expression=cron,
                params=arguments,
                pipeline_package_path=path,
                service_account=service_account or None,
            )
            return Submission(
                "kfp",
                job.recurring_run_id,
                f"{prefix}/#/recurringrun/details/{job.recurring_run_id}",
                "recurring-run",
                None,
            )
        result = _kfp_call(
            host,
            "create the run",
            client.create_run_from_pipeline_package,
            path,
            arguments=arguments,
            run_name=name,
            experiment_name=experiment or None,
            namespace=namespace or None,
            service_account=service_account or None,
        )
    run_id = result.run_id
    if not run_id:
        raise ConfigError(
            f"{host} accepted the run but returned no run id: is it the KFP API (not its UI "
            "behind a login page)?"
        )

    def poll() -> str:
        return str(_kfp_call(host, "read the run", client.get_run, run_id).state or "")

    return Submission("kfp", run_id, f"{prefix}/#/runs/details/{run_id}", "run", poll)


_ARGO_PATHS = {
    "Workflow": ("workflows", "workflow"),
    "CronWorkflow": ("cron-workflows", "cronWorkflow"),
    "WorkflowTemplate": ("workflow-templates", "template"),
}


def _http(
    method: str,
    url: str,
    token: str,
    body: dict[str, Any] | None,
    verify_ssl: bool,
    server: str,
    timeout: float = 30,
) -> bytes:
    """Send one request; any failure is one ``ConfigError`` line naming the server and the cause."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", token if token.startswith("Bearer ") else f"Bearer {token}")
    context = None
    if not verify_ssl:
        import ssl

        context = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        detail = " ".join(exc.read().decode("utf-8", "replace").split())[:300]
        hint = _AUTH_HINT.get(server, "") if exc.code in (401, 403) else ""
        raise ConfigError(f"{server} {method} {url} answered {exc.code}: {detail}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"cannot reach the {server} at {url}: {_cause(exc)}") from None


_AUTH_HINT = {
    "Argo Server": "; pass a valid token (token=..., --token or $ARGO_TOKEN)",
    "KFP API": "; pass a valid token (token=... or --token), or use the KFP API endpoint "
    "that needs none",
}


def _cause(exc: BaseException) -> str:
    """Return the innermost reason of a connection failure, as one short phrase."""
    reason: Any = getattr(exc, "reason", None) or exc
    while getattr(reason, "reason", None) is not None and reason.reason is not reason:
        reason = reason.reason
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror)
    text = str(reason)
    found = re.search(r"\[Errno -?\d+\] ([^)\"'\]]+)", text)
    if found:
        return found.group(1).strip()
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "its TLS certificate is not trusted (give verify_ssl=False to skip the check)"
    return " ".join(text.split())[:200] or type(reason).__name__


def _argo_request(
    method: str, url: str, token: str, body: dict[str, Any] | None, verify_ssl: bool
) -> dict[str, Any]:
    raw = _http(method, url, token, body, verify_ssl, "Argo Server")
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ConfigError(
            f"Argo Server {method} {url} answered with something that is not a JSON object "
            f"({raw[:60]!r}): is {url.split('/api/', 1)[0]} the Argo Server (a login page?)"
        )
    return data


def _probe_kfp(host: str, token: str, verify_ssl: bool) -> dict[str, Any]:
    """Fail fast, in one line, when ``host`` is not a reachable KFP API that accepts us.

    Returns the health answer (``tag_name``: the backend's release).

    ``kfp.Client`` would retry its health check five times, 5 s apart, logging each failure
    with a traceback.
    """
    url = f"{host}/apis/v2beta1/healthz"
    raw = _http("GET", url, token, None, verify_ssl, "KFP API", timeout=15)
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ConfigError(
            f"{host} is not the KFP API: GET {url} answered {raw[:40]!r} (a login page?); "
            "give the KFP API endpoint (e.g. http://ml-pipeline-ui.kubeflow) and a token"
        )
    return answer


def _kfp_call(host: str, what: str, call: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Call the kfp client; an API or connection error becomes one line naming host and cause."""
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status is None and not isinstance(exc, OSError) and not hasattr(exc, "reason"):
            raise
        if status is not None:
            body = str(getattr(exc, "body", "") or "")
            try:
                body = str(json.loads(body).get("message", body))
            except (ValueError, AttributeError):
                pass
            hint = _AUTH_HINT["KFP API"] if status in (401, 403) else ""
            raise ConfigError(
                f"the KFP API at {host} refused to {what}: {status} "
                f"{getattr(exc, 'reason', '')}: {' '.join(body.split())[:300]}{hint}"
            ) from None
        raise ConfigError(f"cannot reach the KFP API at {host} to {what}: {_cause(exc)}") from None


def _submit_argo(
    doc: dict[str, Any],
    host: str,
    arguments: dict[str, Any],
    token: str,
    namespace: str,
    verify_ssl: bool,
) -> Submission:
    kind = doc["kind"]
    spec = doc["spec"]["workflowSpec"] if kind == "CronWorkflow" else doc["spec"]
    for param in spec.get("arguments", {}).get("parameters", []):
        if param["name"] in arguments:
            value = arguments[param["name"]]
            param["value"] = value if isinstance(value, str) else json.dumps(value)
    path, field = _ARGO_PATHS[kind]
    created = _argo_request(
        "POST", f"{host}/api/v1/{path}/{namespace}", token, {field: doc}, verify_ssl
    )
    name = created.get("metadata", {}).get("name", "")
    if kind != "Workflow":
        ui = "cron-workflows" if kind == "CronWorkflow" else "workflow-templates"
        return Submission("argo", name, f"{host}/{ui}/{namespace}/{name}", kind, None)

    def poll() -> str:
        got = _argo_request(
            "GET", f"{host}/api/v1/workflows/{namespace}/{name}", token, None, verify_ssl
        )
        return str(got.get("status", {}).get("phase", ""))

    return Submission("argo", name, f"{host}/workflows/{namespace}/{name}", kind, poll)
