"""The Kubernetes job runtime: each run is a ``batch/v1`` Job running the mlflowlet entrypoint.

``new_runner(kind='job', image='repo/img:tag', command='training.py')`` or
``new_runner(command='job://repo/img:tag#training.py')``. The run spec travels in the container's
``MLFLOWLET_EXEC_CONFIG``; secret values go into a Kubernetes Secret (created at submit, owned by
the Job) that the pod reads through ``secretKeyRef``, never into the Job manifest or the run DB.
Hyper-parameters become one Indexed Job (``completionMode: Indexed``): pod ``i`` runs iteration
``i + 1`` (the entrypoint reads ``JOB_COMPLETION_INDEX``). Each manifest is validated before it
is submitted (the official OpenAPI schema, strict), so a bad ``apply(fn)`` edit fails naming the
field path. ``run(..., dry_run=True)`` returns the Job manifest without submitting.

Results reach the run DB either way: through ``MLFLOWLET_DBPATH`` when the run DB is the
mlflowlet server (or ``dbpath=`` names one the pods reach), else from the pod's last log line
``MLFLOWLET_RUN_JSON=...`` (or its termination message), which the caller stores.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import ConfigError
from ..model import RunObject
from . import _k8s
from ._k8s_watch import Watch, fail
from .base import Runtime

__all__ = ["KubeJobRuntime"]

TOKEN_KEY = "MLFLOWLET_API_TOKEN"
NAMESPACE_KEY, WORKLOAD_KEY = "mlflowlet.io/namespace", "mlflowlet.io/workload"  # annotations


class KubeJobRuntime(Runtime):
    """Runs each run as a Kubernetes Job (hyper-parameter sweeps as one Indexed Job).

    Args:
        command: ``'training.py'`` (a file in the image; the handler is looked up there), or
            ``'job://repo/img:tag#training.py'``.
        image: the container image (an OCI reference).
        namespace: where the Job is created.
        ttl_seconds_after_finished: when Kubernetes removes the finished Job (``None``: never).
        backoff_limit: pod retries before the Job (or an index of an Indexed Job) fails.
        start_timeout: seconds a pod may stay unstarted before the run fails with its last event.
        poll_interval: seconds between status polls.
        dbpath: a run DB URL the pods can reach (default: the caller's DB when it is a server).
        working_dir: the container's working directory.
        batch_api: a ``kubernetes.client.BatchV1Api`` (default: from the kube config).
        core_api: a ``kubernetes.client.CoreV1Api`` (default: from the kube config).
        k8s_version: the Kubernetes schema version manifests are validated against.
        **options: common runtime options (``handler``, ...).
    """

    kind = "job"
    workload_kind = "Job"
    container_name = "main"
    supports_gpus = True

    def __init__(  # noqa: PLR0913 - one keyword per Job setting
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
        k8s_version: str = _k8s.K8S_VERSION,
        **options: Any,
    ) -> None:
        scheme = f"{self.kind}://"
        if command.startswith(scheme):
            url_image, _, command = command[len(scheme) :].partition("#")
            image = image or url_image
        super().__init__(command, **options)
        self.image = _k8s.check_image(image) if image else ""
        _k8s.check_dns_label(namespace, "namespace")
        self.namespace = namespace
        self.ttl_seconds_after_finished = ttl_seconds_after_finished
        self.backoff_limit, self.start_timeout = int(backoff_limit), float(start_timeout)
        self.poll_interval = float(poll_interval)
        self.dbpath, self.working_dir = dbpath, working_dir
        self.k8s_version = k8s_version
        self._batch_api, self._core_api = batch_api, core_api
        self._limits: dict[str, str] = {}
        self._requests: dict[str, str] = {}
        self._env: dict[str, str] = {}
        self._secret_refs: dict[str, tuple[str, str]] = {}
        self._env_from: list[str] = []
        self._node_selector: dict[str, str] = {}
        self._tolerations: list[Any] = []
        self._volumes: list[tuple[dict, dict]] = []
        self._service_account = ""
        self._appliers: list[Callable[[dict], Any]] = []
        self._build_config: dict[str, Any] = {}
        self._notebook_script = ""
        self.last_manifests: list[dict] = []
        self.watch_output = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} image={self.image!r} command={self.command!r}>"

    # pod settings (each returns the runtime, so calls chain) -----------------------------------
    def with_limits(
        self,
        cpu: Any = None,
        memory: Any = None,
        gpus: int | None = None,
        gpu_type: str = "nvidia.com/gpu",
    ) -> KubeJobRuntime:
        """Set resource limits: ``cpu`` ('2', '500m'), ``memory`` ('4Gi'), ``gpus`` (a count)."""
        self._limits.update(self._resources(cpu, memory, "with_limits"))
        if gpus is not None:
            if not self.supports_gpus:
                raise ConfigError(
                    f"gpus: the {self.kind} runtime{self._gpu_where()} cannot use "
                    "GPUs; drop gpus=, or run with kind='job' or 'mpijob'"
                )
            if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
                raise ConfigError(f"with_limits gpus={gpus!r} must be a whole number >= 0")
            self._limits[gpu_type] = str(gpus)
        return self

    def _gpu_where(self) -> str:
        return ""

    def with_requests(self, cpu: Any = None, memory: Any = None) -> KubeJobRuntime:
        """Set resource requests: ``cpu`` and ``memory`` as Kubernetes quantities."""
        self._requests.update(self._resources(cpu, memory, "with_requests"))
        return self

    @staticmethod
    def _resources(cpu: Any, memory: Any, where: str) -> dict[str, str]:
        out = {}
        if cpu is not None:
            out["cpu"] = _k8s.check_quantity(cpu, f"{where} cpu")
        if memory is not None:
            out["memory"] = _k8s.check_quantity(memory, f"{where} memory")
        return out

    def set_env(self, name: str, value: Any) -> KubeJobRuntime:
        """Set a plain environment variable (use :meth:`with_secret_env` for secrets)."""
        if not _k8s.ENV_NAME.match(str(name)):
            raise ConfigError(f"set_env: {name!r} is not a valid environment variable name")
        self._env[str(name)] = str(value)
        return self

    def with_secret_env(
        self, secret: str, key: str | None = None, env_name: str | None = None
    ) -> KubeJobRuntime:
        """Read an existing Kubernetes Secret: all keys (``envFrom``) or ``key``."""
        _k8s.check_dns_label(secret, "with_secret_env secret")
        if key is None:
            self._env_from.append(secret)
        else:
            self._secret_refs[env_name or key] = (secret, key)
        return self

    def with_node_selector(
        self, selector: dict[str, str] | None = None, **labels: str
    ) -> KubeJobRuntime:
        """Schedule the pods on nodes with these labels."""
        self._node_selector.update({**(selector or {}), **labels})
        return self

    def with_tolerations(self, *tolerations: Any) -> KubeJobRuntime:
        """Add tolerations: dicts with key/operator/value/effect, ``V1Toleration``s, or lists."""
        k8s = _k8s.client()
        flat = [t for item in tolerations for t in (item if isinstance(item, list) else [item])]
        self._tolerations += [_k8s.to_model(k8s.V1Toleration, t, "toleration") for t in flat]
        return self

    def with_volume(
        self,
        mount_path: Any,
        mount: Any = None,
        *,
        name: str = "",
        pvc: str = "",
        secret: str = "",
        config_map: str = "",
        empty_dir: bool = False,
        host_path: str = "",
        read_only: bool = False,
        sub_path: str = "",
    ) -> KubeJobRuntime:
        """Mount a volume at ``mount_path``.

        Give exactly one source: ``pvc``, ``secret``, ``config_map``, ``empty_dir`` or
        ``host_path``; the volume's name defaults to the source's. Or give a whole volume (a
        ``V1Volume`` or its dict) and its mount: ``with_volume(volume, '/data')`` (or a
        ``V1VolumeMount`` / dict as ``mount``).
        """
        if not isinstance(mount_path, str):
            return self._with_raw_volume(mount_path, mount)
        sources = {
            "persistentVolumeClaim": {"claimName": pvc} if pvc else None,
            "secret": {"secretName": secret} if secret else None,
            "configMap": {"name": config_map} if config_map else None,
            "emptyDir": {} if empty_dir else None,
            "hostPath": {"path": host_path} if host_path else None,
        }
        given = {k: v for k, v in sources.items() if v is not None}
        if len(given) != 1:
            raise ConfigError(
                f"with_volume({mount_path!r}) needs exactly one source: pvc=, "
                "secret=, config_map=, empty_dir=True or host_path="
            )
        vol_name = _k8s.dns_name(
            name or pvc or secret or config_map or "vol",
            str(len(self._volumes)) if not name else "",
        )
        mount = {
            "name": vol_name,
            "mountPath": mount_path,
            "readOnly": read_only or None,
            "subPath": sub_path or None,
        }
        self._volumes.append(
            ({"name": vol_name, **given}, {k: v for k, v in mount.items() if v is not None})
        )
        return self

    def _with_raw_volume(self, volume: Any, mount: Any) -> KubeJobRuntime:
        k8s = _k8s.client()
        vol = _k8s.serialize(_k8s.to_model(k8s.V1Volume, volume, "with_volume volume"))
        if isinstance(mount, str):
            mount = {"name": vol.get("name"), "mountPath": mount}
        if mount is None:
            raise ConfigError(
                f"with_volume({vol.get('name')!r} volume) needs where to mount it: "
                "with_volume(volume, '/mount/path')"
            )
        mnt = _k8s.serialize(_k8s.to_model(k8s.V1VolumeMount, mount, "with_volume mount"))
        self._volumes.append((vol, mnt))
        return self

    def with_service_account(self, name: str) -> KubeJobRuntime:
        """Run the pods as this service account."""
        _k8s.check_dns_label(name, "service account")
        self._service_account = name
        return self

    def apply(self, fn: Callable[[dict], Any]) -> KubeJobRuntime:
        """Edit the workload manifest with ``fn(manifest)`` (in place, or return a new dict)."""
        self._appliers.append(fn)
        return self

    # the image (MLRun: with_code / build_config / deploy) -----------------------------------
    def with_code(self, from_file: str = "", body: str = "") -> KubeJobRuntime:
        """Put handler code in the image (``/mlflowlet/handler.py``) at the next build.

        Give ``from_file`` (a ``.py`` file) or ``body`` (its text); ``run(handler='name')`` then
        runs that function. Built by :meth:`build_image` / :meth:`deploy`, or by the first run.
        """
        if bool(from_file) == bool(body):
            raise ConfigError("with_code takes from_file='code.py' or body='...', one of them")
        if from_file:
            with open(from_file, encoding="utf-8") as fh:
                body = fh.read()
        self._build_config["code"] = body
        self._build_config.pop("built", None)
        self.command = "handler.py"
        return self

    def with_requirements(self, requirements: Any) -> KubeJobRuntime:
        """Pip requirements (a list or a requirements file) installed at the next build."""
        self._build_config["requirements"] = requirements
        self._build_config.pop("built", None)
        return self

    def build_image(self, image: str = "", force: bool = False, **options: Any) -> Any:
        """Build this runner's image once (its script or notebook, code, requirements).

        A notebook ``command`` is converted to a script here, at build time, its ``parameters``
        cell receiving each run's params. Later calls with the same inputs build nothing
        (``BuildResult.reused``) unless ``force=True``; the runner runs in ``image`` afterwards.

        Args:
            image: the reference to build (default: the runner's ``image``).
            force: build even when nothing changed.
            **options: :func:`mlflowlet.build.build_image` options: ``requirements``,
                ``base_image``, ``commands``, ``builder``, ``push``, ``dry_run``, kaniko's.

        Returns:
            The :class:`mlflowlet.build.BuildResult`.
        """
        from .._seams import seam  # the build layer sits above the runtimes

        return seam("build_runner_image")(self, image, force, **options)

    def deploy(self, **options: Any) -> Any:
        """Build the image as :meth:`build_image` does (MLRun's name for it)."""
        return self.build_image(**options)

    # the API ----------------------------------------------------------------------------------
    @property
    def batch_api(self) -> Any:
        """The ``BatchV1Api`` Jobs are created with (from the kube config on first use)."""
        if self._batch_api is None:
            self._batch_api = _k8s.client().BatchV1Api(_api_client())
        return self._batch_api

    @property
    def core_api(self) -> Any:
        """The ``CoreV1Api`` for Secrets, pods, logs and events."""
        if self._core_api is None:
            self._core_api = _k8s.client().CoreV1Api(_api_client())
        return self._core_api

    # running ----------------------------------------------------------------------------------
    def run(
        self,
        task: Any = None,
        handler: Any = None,
        *args: Any,
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> Any:
        """Run a task as a Job (see :meth:`Runtime.run`); ``dry_run=True`` returns the manifest.

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
        manifests, _ = self.build_manifests(run, db, iterations, run.spec.parallel or 0)
        self.last_manifests = [_k8s.redact(m) if m["kind"] == "Secret" else m for m in manifests]
        if dry_run == "server":
            return self._server_dry_run(manifests)
        return manifests[-1]

    def _dry_iterations(self, run: RunObject) -> list[dict]:
        from ..hyper import SweepOptions

        combos = SweepOptions.of(run.spec).expand()
        return [{**run.spec.params, **combo} for combo in combos]

    def _server_dry_run(self, manifests: list[dict]) -> Any:
        api = _k8s.client()
        out = None
        for m in manifests:
            if m["kind"] == "Secret":
                self.core_api.create_namespaced_secret(
                    self.namespace, m, dry_run="All", field_validation="Strict"
                )
            else:
                out = self._create_workload(m, dry_run="All", field_validation="Strict")
        return api.ApiClient().sanitize_for_serialization(out)

    def _before_run(self, run: RunObject, handler: Any, db: Any, **options: Any) -> None:
        self.watch_output = bool(options.pop("watch", True))
        dry = options.pop("dry", False)
        super()._before_run(run, handler, db, **options)
        if self._build_config and "built" not in self._build_config and not dry:
            self.build_image()  # with_code / with_requirements asked for a build: once
        if not self.image:
            from ..settings import get_settings

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

    def _execute(self, run: RunObject, handler: Any, db: Any) -> RunObject:
        return next(iter(self._workload([run], db, indexed=False)))

    def _execute_many(
        self, runs: Iterable[RunObject], handler: Any, db: Any, parallel: int
    ) -> Iterator[RunObject]:
        """Run every iteration as one pod of a single Indexed Job."""
        children = list(runs)
        if children:
            yield from self._workload(children, db, indexed=True, parallel=parallel)

    @staticmethod
    def _default_parallel() -> int:
        return 0  # all iterations at once, as far as the cluster schedules them

    def _run_iterations(self, parent: RunObject, handler: Any, db: Any) -> RunObject:
        # the parent names the Indexed Job too, so aborting the parent deletes it
        parent.metadata.annotations.update(
            {NAMESPACE_KEY: self.namespace, WORKLOAD_KEY: self.workload_name(parent)}
        )
        return super()._run_iterations(parent, handler, db)

    def _workload(
        self, runs: list[RunObject], db: Any, indexed: bool, parallel: int = 0
    ) -> Iterator[RunObject]:
        first = runs[0]
        iterations = [r.spec.params for r in runs] if indexed else None
        for run in runs:  # where the run lives, so run.abort() can find it later
            run.metadata.annotations.update(
                {NAMESPACE_KEY: self.namespace, WORKLOAD_KEY: self.workload_name(first)}
            )
        manifests, _ = self.build_manifests(first, db, iterations, parallel)
        name = manifests[-1]["metadata"]["name"]
        for run in runs:
            run.status.state = "pending"
            db.store_run(run.to_dict(), run.uid, run.metadata.project, run.metadata.iteration)
        try:
            self._submit(manifests)
        except Exception as exc:  # the API refused it, or no cluster is reachable
            reason = _k8s.api_error(exc) if hasattr(exc, "status") else str(exc)
            for run in runs:
                yield self._finish(
                    run,
                    db,
                    "error",
                    f"submitting the {self.workload_kind} "
                    f"{name} to namespace {self.namespace!r} failed: {reason}",
                )
            return
        yield from Watch(self, name, runs, db, indexed).follow()

    @classmethod
    def for_run(cls, run: RunObject, **options: Any) -> KubeJobRuntime:
        """Return a runtime that reaches ``run``'s workload (its namespace read from the run)."""
        options.setdefault("namespace", run.metadata.annotations.get(NAMESPACE_KEY, "default"))
        return cls(**options)

    def abort(self, run: RunObject, db: Any = None) -> RunObject:
        """Delete the run's workload (and its pods and Secret) and mark the run ``aborted``."""
        self._delete(run.metadata.annotations.get(WORKLOAD_KEY) or self.workload_name(run))
        if db is None:
            from ..db import get_run_db

            db = get_run_db()
        return self._finish(run, db, "aborted", f"aborted: the {self.workload_kind} was deleted")

    def _finish(self, run: RunObject, db: Any, state: str, error: str) -> RunObject:
        fail(run, state, error)
        log = f"{error}\n".encode() if error else b""
        db.commit_run(run.to_dict(), log=log)
        return run

    # manifests --------------------------------------------------------------------------------
    def workload_name(self, run: RunObject) -> str:
        """Return the workload's name: the run name and the first 8 characters of its uid."""
        return f"{_k8s.dns_name(run.metadata.name, max_len=41)}-{run.uid[:8]}"

    def build_manifests(
        self,
        run: RunObject,
        db: Any = None,
        iterations: list[dict] | None = None,
        parallel: int = 0,
    ) -> tuple[list[dict], dict[str, str]]:
        """Return ``([Secret?, workload], secret values)``, each manifest validated.

        Args:
            run: the prepared run.
            db: the caller's run DB (a server DB is handed to the pods).
            iterations: the params of each iteration (an Indexed Job), or None.
            parallel: pods at once for iterations (0: all).
        """
        name = self.workload_name(run)
        labels = self._labels(run)
        values = self._secret_values(run, db)
        secret = f"{name}-secrets" if values else ""
        env = self._env_vars(run, db, secret, sorted(values), iterations)
        workload = self._workload_manifest(run, name, env, labels, iterations, parallel)
        for fn in self._appliers:
            workload = fn(workload) or workload
        _k8s.validate(workload, self.k8s_version)
        manifests = [workload]
        if values:
            manifests.insert(
                0,
                _k8s.validate(
                    _k8s.secret_manifest(secret, self.namespace, values, labels), self.k8s_version
                ),
            )
        return manifests, values

    def _labels(self, run: RunObject) -> dict[str, str]:
        return {
            **_k8s.MANAGED_BY,
            "mlflowlet.io/uid": run.uid[:63],
            "mlflowlet.io/name": _k8s.dns_name(run.metadata.name),
            "mlflowlet.io/project": _k8s.dns_name(run.metadata.project),
        }

    def _secret_values(self, run: RunObject, db: Any) -> dict[str, str]:
        from ..secrets import SecretsStore
        from ..settings import get_settings

        values = {}
        store = SecretsStore.from_sources(run.spec.secret_sources)
        if len(store):
            values[_k8s.SECRETS_KEY] = json.dumps(dict(store.items()), sort_keys=True)
        if self._db_url(db) and get_settings().api_token:
            values[TOKEN_KEY] = get_settings().api_token
        return values

    def _db_url(self, db: Any) -> str:
        url = self.dbpath or str(getattr(db, "url", "") or "")
        return url if "://" in url else ""

    def _shared_db(self, db: Any) -> bool:
        return bool(self._db_url(db))

    def _masker(self, run: RunObject) -> Any:
        from ..secrets import SecretsStore

        store = SecretsStore.from_sources(run.spec.secret_sources)
        return store if len(store) else None

    def _pod_spec_json(self, run: RunObject, keys: list[str], iterations: list | None) -> str:
        data = run.to_dict()
        data.pop("status", None)
        spec = data["spec"]
        secret_keys = []
        for src in run.spec.secret_sources:  # the pod gets every value as one inline source
            from ..secrets import SecretsStore

            secret_keys += list(SecretsStore.from_sources([src]).keys())
        spec["secret_sources"] = (
            [{"kind": "inline", "source": None, "keys": sorted(set(secret_keys))}]
            if _k8s.SECRETS_KEY in keys
            else []
        )
        if iterations is not None:  # the exact iterations, so every pod expands the same list
            names = list(dict.fromkeys(k for it in iterations for k in it))
            spec.update(
                params={},
                param_file="",
                strategy="list",
                max_iterations=None,
                hyper_params={k: [it.get(k) for it in iterations] for k in names},
            )
            data["metadata"]["iteration"] = 0
        return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)

    def _env_vars(
        self, run: RunObject, db: Any, secret: str, keys: list[str], iterations: list | None
    ) -> list[Any]:
        k8s = _k8s.client()
        env = [
            k8s.V1EnvVar(
                name="MLFLOWLET_EXEC_CONFIG", value=self._pod_spec_json(run, keys, iterations)
            ),
            k8s.V1EnvVar(name="PYTHONUNBUFFERED", value="1"),
        ]
        if self._db_url(db):
            env.append(k8s.V1EnvVar(name="MLFLOWLET_DBPATH", value=self._db_url(db)))
        refs = {**{k: (secret, k) for k in keys}, **self._secret_refs}
        for env_name, (sec, key) in sorted(refs.items()):
            env.append(
                k8s.V1EnvVar(
                    name=env_name,
                    value_from=k8s.V1EnvVarSource(
                        secret_key_ref=k8s.V1SecretKeySelector(name=sec, key=key)
                    ),
                )
            )
        env += [k8s.V1EnvVar(name=k, value=v) for k, v in sorted(self._env.items())]
        return env

    def _container(self, run: RunObject, env: list[Any], command: list[str] | None = None) -> Any:
        k8s = _k8s.client()
        resources = None
        if self._limits or self._requests:
            resources = k8s.V1ResourceRequirements(
                limits=dict(self._limits) or None, requests=dict(self._requests) or None
            )
        return k8s.V1Container(
            name=self.container_name,
            image=self.image,
            command=command or self._command(run),
            env=env,
            resources=resources,
            working_dir=self.working_dir or None,
            env_from=[
                k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=n))
                for n in self._env_from
            ]
            or None,
            volume_mounts=[m for _, m in self._volumes] or None,
            termination_message_policy="FallbackToLogsOnError",
        )

    def _command(self, run: RunObject) -> list[str]:
        if run.spec.handler or not self.command:
            return ["python", "-m", "mlflowlet.entrypoint"]
        if self.command.split(" ", 1)[0].endswith(".ipynb"):  # converted at build, else in the pod
            script = self._notebook_script or self.command.split(" ", 1)[0]
            return ["python", "-m", "mlflowlet.entrypoint", "--script", script]
        return ["python", *shlex.split(self.command)]  # a plain script: it records itself

    def _pod_spec(self, containers: list[Any], restart_policy: str = "Never") -> Any:
        k8s = _k8s.client()
        return k8s.V1PodSpec(
            containers=containers,
            restart_policy=restart_policy,
            service_account_name=self._service_account or None,
            node_selector=dict(self._node_selector) or None,
            tolerations=list(self._tolerations) or None,
            volumes=[v for v, _ in self._volumes] or None,
        )

    def _workload_manifest(
        self,
        run: RunObject,
        name: str,
        env: list[Any],
        labels: dict,
        iterations: list | None,
        parallel: int,
    ) -> dict:
        k8s = _k8s.client()
        template = k8s.V1PodTemplateSpec(
            metadata=k8s.V1ObjectMeta(labels=labels),
            spec=self._pod_spec([self._container(run, env)]),
        )
        spec = k8s.V1JobSpec(
            template=template,
            ttl_seconds_after_finished=self.ttl_seconds_after_finished,
            active_deadline_seconds=int(run.spec.timeout) if run.spec.timeout else None,
        )
        if iterations is not None:
            count = len(iterations)
            spec.completion_mode, spec.completions = "Indexed", count
            spec.parallelism = min(parallel, count) if parallel and parallel > 0 else count
            spec.backoff_limit_per_index = self.backoff_limit  # one failed iteration fails alone
        else:
            spec.backoff_limit = self.backoff_limit
        job = k8s.V1Job(
            api_version="batch/v1",
            kind="Job",
            spec=spec,
            metadata=k8s.V1ObjectMeta(name=name, namespace=self.namespace, labels=labels),
        )
        return _k8s.serialize(job)

    # the workload through the API (overridden by MPIJob and Spark) ----------------------------
    def _submit(self, manifests: list[dict]) -> None:
        secret = next((m for m in manifests if m["kind"] == "Secret"), None)
        if secret is not None:
            self.core_api.create_namespaced_secret(self.namespace, secret)
        created = self._create_workload(manifests[-1])
        if secret is not None:  # the Job owns its Secret: Kubernetes deletes both together
            meta = _meta(created)
            owner = {
                "apiVersion": manifests[-1]["apiVersion"],
                "kind": self.workload_kind,
                "name": meta.get("name"),
                "uid": meta.get("uid"),
            }
            if owner["uid"]:
                self.core_api.patch_namespaced_secret(
                    secret["metadata"]["name"],
                    self.namespace,
                    {"metadata": {"ownerReferences": [owner]}},
                )

    def _create_workload(self, manifest: dict, **kw: Any) -> Any:
        return self.batch_api.create_namespaced_job(self.namespace, manifest, **kw)

    def _workload_state(self, name: str) -> tuple[str, str]:
        job = self.batch_api.read_namespaced_job_status(name, self.namespace)
        for cond in (job.status.conditions or []) if job.status else []:
            if cond.status != "True":
                continue
            if cond.type == "Complete":
                return "succeeded", ""
            if cond.type == "Failed":
                deadline = job.spec.active_deadline_seconds
                if cond.reason == "DeadlineExceeded":
                    return "failed", (
                        f"the Job {name} ran past its deadline of {deadline} s "
                        "(activeDeadlineSeconds, from the run's timeout)"
                    )
                return "failed", f"the Job {name} failed: {cond.reason}: {cond.message or ''}"
        return "", ""

    def _list_pods(self, name: str) -> list[Any]:
        pods = self.core_api.list_namespaced_pod(
            self.namespace, label_selector=f"job-name={name}"
        ).items
        return sorted(pods, key=lambda p: p.metadata.name)

    def _delete(self, name: str) -> None:
        for call, target in (
            (self._delete_workload, name),
            (self.core_api.delete_namespaced_secret, f"{name}-secrets"),
        ):
            try:
                call(target, self.namespace, propagation_policy="Background")
            except Exception as exc:
                if getattr(exc, "status", None) != 404:  # already gone is fine
                    raise

    def _delete_workload(self, name: str, namespace: str, **kw: Any) -> Any:
        return self.batch_api.delete_namespaced_job(name, namespace, **kw)


def _meta(obj: Any) -> dict:
    if isinstance(obj, dict):
        return obj.get("metadata") or {}
    meta = getattr(obj, "metadata", None)
    return {"name": getattr(meta, "name", None), "uid": getattr(meta, "uid", None)}


def _api_client() -> Any:
    """Return an ``ApiClient`` from ``KUBECONFIG`` (or ``~/.kube/config``), else in-cluster."""
    try:
        from kubernetes import config
    except ImportError:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("kubernetes", "k8s") from None
    try:
        return config.new_client_from_config()
    except Exception as kube_exc:
        try:
            config.load_incluster_config()
            return _k8s.client().ApiClient()
        except Exception:
            raise ConfigError(
                f"no Kubernetes cluster is configured ({kube_exc}); set KUBECONFIG, or run "
                "inside a cluster, or pass batch_api=/core_api="
            ) from None
