"""What the Kubernetes runtimes share: options, ``run`` (and its dry run), submit, watch, abort.

A run becomes one workload (a Job, an MPIJob, a SparkApplication) running the mlflowlet
entrypoint. The run spec travels in the container's ``MLFLOWLET_EXEC_CONFIG``; secret values go
into a Kubernetes Secret (created at submit, owned by the workload) that the pod reads through
``secretKeyRef``, never into the manifest or the run DB. Each manifest is validated before it is
submitted (the official OpenAPI schema, strict), so a bad ``apply(fn)`` edit fails naming the
field path. ``run(..., dry_run=True)`` returns the manifest without submitting.

Results reach the run DB either way: through ``MLFLOWLET_DBPATH`` when the run DB is the
mlflowlet server (or ``dbpath=`` names one the pods reach), else from the pod's last log line
``MLFLOWLET_RUN_JSON=...`` (or its termination message), which the caller stores.

A runtime module (:mod:`.job`, :mod:`.mpijob`, :mod:`.spark`) sets ``kind`` and ``workload``
and builds its manifest in :meth:`KubeRuntime._workload_manifest`; hyper-parameter iterations
run one workload each unless it overrides :meth:`_execute_many` (the Job: one Indexed Job).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ..._text import log_bytes
from ...errors import ConfigError
from ...model import RunObject
from ..base import Runtime
from . import checks, manifests
from .client import KubeClient, Workload
from .fluent import PodSettings
from .options import PodOptions
from .watch import Watch, fail

if TYPE_CHECKING:
    from ...db.base import RunDB

TOKEN_KEY = "MLFLOWLET_API_TOKEN"
NAMESPACE_KEY, WORKLOAD_KEY = "mlflowlet.io/namespace", "mlflowlet.io/workload"  # annotations


class KubeRuntime(PodSettings, Runtime):
    """Runs each run as a Kubernetes workload (see the module doc).

    Args:
        command: ``'training.py'`` (a file in the image; the handler is looked up there), or
            ``'<kind>://repo/img:tag#training.py'``.
        image: the container image (an OCI reference).
        namespace: where the workload is created.
        ttl_seconds_after_finished: when Kubernetes removes the finished workload (``None``:
            never).
        backoff_limit: pod retries before the workload (or an index of an Indexed Job) fails.
        start_timeout: seconds a pod may stay unstarted before the run fails with its last event.
        poll_interval: seconds between status polls.
        dbpath: a run DB URL the pods can reach (default: the caller's DB when it is a server).
        working_dir: the container's working directory.
        batch_api: a ``kubernetes.client.BatchV1Api`` (default: from the kube config).
        core_api: a ``kubernetes.client.CoreV1Api`` (default: from the kube config).
        custom_api: a ``kubernetes.client.CustomObjectsApi`` (default: from the kube config).
        k8s_version: the Kubernetes schema version manifests are validated against.
        **options: common runtime options (``handler``, ...).
    """

    workload: ClassVar[Workload]
    supports_gpus = True
    build_preset = ""  # the build_image preset of this runtime's image (see mlflowlet.build)

    def __init__(  # noqa: PLR0913 - one keyword per workload setting
        self,
        command: str = "",
        image: str = "",
        namespace: str = "default",
        ttl_seconds_after_finished: int | None = 3600,
        backoff_limit: int = 0,
        start_timeout: float = 300.0,
        poll_interval: float = 2.0,
        dbpath: str = "",
        working_dir: str = "",
        batch_api: Any = None,
        core_api: Any = None,
        custom_api: Any = None,
        k8s_version: str = checks.K8S_VERSION,
        **options: Any,
    ) -> None:
        scheme = f"{self.kind}://"
        if command.startswith(scheme):
            url_image, _, command = command[len(scheme) :].partition("#")
            image = image or url_image
        super().__init__(command, **options)
        self.image = checks.check_image(image) if image else ""
        checks.check_dns_label(namespace, "namespace")
        self.namespace = namespace
        self.ttl_seconds_after_finished = ttl_seconds_after_finished
        self.backoff_limit, self.start_timeout = int(backoff_limit), float(start_timeout)
        self.poll_interval = float(poll_interval)
        self.dbpath = dbpath
        self.k8s_version = k8s_version
        self.client = KubeClient(namespace, batch_api, core_api, custom_api)
        self.pod = PodOptions(working_dir=working_dir)
        self._appliers: list[Callable[[dict], Any]] = []
        self._build_config: dict[str, Any] = {}
        self._notebook_script = ""
        self.last_manifests: list[dict] = []
        self.watch_output = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} image={self.image!r} command={self.command!r}>"

    @property
    def workload_kind(self) -> str:
        """The kind of workload a run becomes (``Job``, ``MPIJob``, ``SparkApplication``)."""
        return self.workload.kind

    @property
    def container_name(self) -> str:
        """The container whose log and termination message carry the run."""
        return self.workload.container

    @property
    def working_dir(self) -> str:
        """The container's working directory (``''``: the image's)."""
        return self.pod.working_dir

    @working_dir.setter
    def working_dir(self, value: str) -> None:
        self.pod.working_dir = value

    @property
    def batch_api(self) -> Any:
        """The ``BatchV1Api`` Jobs are created with (from the kube config on first use)."""
        return self.client.batch

    @property
    def core_api(self) -> Any:
        """The ``CoreV1Api`` for Secrets, pods, logs and events."""
        return self.client.core

    @property
    def custom_api(self) -> Any:
        """The ``CustomObjectsApi`` the operators' resources are created with."""
        return self.client.custom

    # running ----------------------------------------------------------------------------------
    def run(
        self,
        task: Any = None,
        handler: Any = None,
        *args: Any,
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> Any:
        """Run a task as a workload (see :meth:`Runtime.run`); ``dry_run=True`` returns it.

        Args:
            task: the task (``new_task(...)``) or its dict.
            handler: the function name (looked up in ``command`` inside the image) or
                ``'module:function'``.
            *args: the other arguments of :meth:`Runtime.run`.
            dry_run: ``True``: return the workload manifest (a dict) and submit nothing (the
                Secret, values redacted, is in ``runtime.last_manifests``); ``'server'``: ask
                the API server to validate it (``dry_run='All'``, strict fields) and return
                its answer.
            **kwargs: the keyword arguments of :meth:`Runtime.run`.

        Returns:
            The finished ``RunObject``, or the manifest dict with ``dry_run``.
        """
        if not dry_run:
            return super().run(task, handler, *args, **kwargs)
        names = ("name", "project", "params", "inputs", "artifact_path")
        picked = dict(zip(names, args, strict=False))
        picked.update({k: kwargs.pop(k) for k in names if k in kwargs})
        if handler is None and hasattr(task, "_handler"):
            handler = task._handler
        handler = handler if handler is not None else self.handler
        run = self._prepare(
            task,
            handler,
            picked.get("name", ""),
            picked.get("project", ""),
            picked.get("params"),
            picked.get("inputs"),
            picked.get("artifact_path", ""),
            kwargs.pop("labels", None),
        )
        db = kwargs.pop("db", None)
        self._before_run(
            run, handler, db, dry=True, **{k: v for k, v in kwargs.items() if k != "watch"}
        )
        iterations = None
        if run.spec.hyper_params or run.spec.param_file:
            iterations = self._dry_iterations(run)
        parallel = run.spec.parallel or self._default_parallel()  # as a submit would
        built, _ = self.build_manifests(run, db, iterations, parallel)
        self.last_manifests = [manifests.redact(m) if m["kind"] == "Secret" else m for m in built]
        if dry_run == "server":
            return self.client.dry_run(self.workload, built)
        return built[-1]

    def _dry_iterations(self, run: RunObject) -> list[dict]:
        raise ConfigError(
            f"dry_run with hyper-parameters: a {self.workload.kind} runs one iteration; dry-run "
            "the task without hyper-parameters to see its manifest"
        )

    def _before_run(self, run: RunObject, handler: Any, db: RunDB, **options: Any) -> None:
        self.watch_output = bool(options.pop("watch", True))
        dry = options.pop("dry", False)
        super()._before_run(run, handler, db, **options)
        if self._build_config and "built" not in self._build_config and not dry:
            self.build_image()  # with_code / with_requirements asked for a build: once
        if not self.image:
            from ...settings import get_settings

            self.image = get_settings().image
        if not self.image:
            raise ConfigError(
                f"the {self.kind} runtime needs an image: new_runner(kind="
                f"'{self.kind}', image='repo/name:tag') or '{self.kind}://image#file'"
            )
        if (
            callable(handler)
            and getattr(handler, "__module__", "") == "__main__"
            and not self.command
        ):
            raise ConfigError(
                f"handler {handler.__name__!r} lives in __main__, which the image does not have: "
                "give command='file.py' (a file in the image) or handler='module:function'"
            )

    def _execute(self, run: RunObject, handler: Any, db: RunDB) -> RunObject:
        return next(iter(self._workload([run], db, indexed=False)))

    def _workload(
        self, runs: list[RunObject], db: RunDB, indexed: bool, parallel: int = 0
    ) -> Iterator[RunObject]:
        first = runs[0]
        iterations = [r.spec.params for r in runs] if indexed else None
        for run in runs:  # where the run lives, so run.abort() can find it later
            run.metadata.annotations.update(
                {NAMESPACE_KEY: self.namespace, WORKLOAD_KEY: self.workload_name(first)}
            )
        built, _ = self.build_manifests(first, db, iterations, parallel)
        name = built[-1]["metadata"]["name"]
        for run in runs:
            run.status.state = "pending"
            db.store_run(run.to_dict(), run.uid, run.metadata.project, run.metadata.iteration)
        try:
            created = self.client.submit(self.workload, built)
            self._check_created(built[-1], created)
        except Exception as exc:  # the API refused it, or no cluster is reachable
            from .pods import api_error

            reason = api_error(exc) if hasattr(exc, "status") else str(exc)
            for run in runs:
                yield self._finish(
                    run,
                    db,
                    "error",
                    f"submitting the {self.workload.kind} "
                    f"{name} to namespace {self.namespace!r} failed: {reason}",
                )
            return
        yield from Watch(self, name, runs, db, indexed).follow()

    def _check_created(self, manifest: dict, created: Any) -> None:
        """Refuse (deleting it) a workload the API server created other than asked."""

    @classmethod
    def for_run(cls, run: RunObject, **options: Any) -> KubeRuntime:
        """Return a runtime that reaches ``run``'s workload (its namespace read from the run)."""
        options.setdefault("namespace", run.metadata.annotations.get(NAMESPACE_KEY, "default"))
        return cls(**options)

    def abort(self, run: RunObject, db: RunDB | None = None) -> RunObject:
        """Delete the run's workload (and its pods and Secret) and mark the run ``aborted``."""
        self._delete(run.metadata.annotations.get(WORKLOAD_KEY) or self.workload_name(run))
        if db is None:
            from ...db import get_run_db

            db = get_run_db()
        return self._finish(run, db, "aborted", f"aborted: the {self.workload.kind} was deleted")

    def _delete(self, name: str) -> None:
        self.client.delete(self.workload, name)

    def _finish(self, run: RunObject, db: RunDB, state: str, error: str) -> RunObject:
        fail(run, state, error)
        log = log_bytes(f"{error}\n") if error else b""
        db.commit_run(run.to_dict(), log=log)
        return run

    # manifests --------------------------------------------------------------------------------
    def workload_name(self, run: RunObject) -> str:
        """Return the workload's name: the run name and the first 8 characters of its uid."""
        return f"{checks.dns_name(run.metadata.name, max_len=41)}-{run.uid[:8]}"

    def build_manifests(
        self,
        run: RunObject,
        db: RunDB | None = None,
        iterations: list[dict] | None = None,
        parallel: int = 0,
    ) -> tuple[list[dict], dict[str, str]]:
        """Return ``([Secret?, ConfigMap?, workload], secret values)``, each manifest validated.

        A sweep's spec (every iteration's params) goes into a ConfigMap the pods mount: one
        environment variable holds at most 128 KiB on Linux (``MAX_ARG_STRLEN``, execve(2)),
        and a 12,000-iteration spec is about 117 KB.

        Args:
            run: the prepared run.
            db: the caller's run DB (a server DB is handed to the pods).
            iterations: the params of each iteration (an Indexed Job), or None.
            parallel: pods at once for iterations (0: all).
        """
        name = self.workload_name(run)
        mask = self._masker(run)
        labels = manifests.run_labels(run, mask)
        values = self._secret_values(run, db)
        secret = f"{name}-secrets" if values else ""
        spec: str | None = manifests.spec_json(run, checks.SECRETS_KEY in values, iterations, mask)
        built: list[dict] = []
        if values:
            doc = manifests.secret_manifest(secret, self.namespace, values, labels)
            built.append(checks.validate(doc, self.k8s_version))
        if iterations is not None:  # a sweep's spec lists every iteration: too big for an env
            data = {manifests.SPEC_FILE: spec or ""}
            doc = manifests.config_map_manifest(f"{name}-spec", self.namespace, data, labels)
            built.append(checks.validate(doc, self.k8s_version))
            spec = None
        env = manifests.env_vars(spec, self._db_url(db), secret, sorted(values), self.pod)
        workload = self._workload_manifest(run, name, env, labels, iterations, parallel)
        annotations = manifests.run_annotations(run, labels, mask)
        if annotations:
            workload["metadata"].setdefault("annotations", {}).update(annotations)
        for fn in self._appliers:
            workload = fn(workload) or workload
        built.append(checks.validate(workload, self.k8s_version))
        return built, values

    def _workload_manifest(
        self,
        run: RunObject,
        name: str,
        env: list[dict[str, Any]],
        labels: dict[str, str],
        iterations: list[dict] | None,
        parallel: int,
    ) -> dict:
        """Return the workload's manifest (each runtime builds its own)."""
        raise NotImplementedError

    def entry_command(self, run: RunObject) -> list[str]:
        """Return what the run's container runs: the entrypoint, or a plain script."""
        if run.spec.handler or not self.command:
            return ["python", "-m", "mlflowlet.entrypoint"]
        if self.command.split(" ", 1)[0].endswith(".ipynb"):  # converted at build, else in the pod
            script = self._notebook_script or self.command.split(" ", 1)[0]
            return ["python", "-m", "mlflowlet.entrypoint", "--script", script]
        return ["python", *shlex.split(self.command)]  # a plain script: it records itself

    def _secret_values(self, run: RunObject, db: RunDB | None) -> dict[str, str]:
        from ...secrets import SecretsStore
        from ...settings import get_settings

        values = {}
        store = SecretsStore.from_sources(run.spec.secret_sources)
        if len(store):
            values[checks.SECRETS_KEY] = json.dumps(dict(store.items()), sort_keys=True)
        if self._db_url(db) and get_settings().api_token:
            values[TOKEN_KEY] = get_settings().api_token
        return values

    def _db_url(self, db: RunDB | None) -> str:
        url = self.dbpath or str(getattr(db, "url", "") or "")
        return url if "://" in url else ""

    def _shared_db(self, db: RunDB | None) -> bool:
        return bool(self._db_url(db))

    def _masker(self, run: RunObject) -> Any:
        from ...secrets import SecretsStore

        store = SecretsStore.from_sources(run.spec.secret_sources)
        return store if len(store) else None
