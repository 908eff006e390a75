"""The chainable settings of the Kubernetes runtimes: ``with_limits(...).set_env(...)``, the image.

:class:`PodSettings` only forwards: each method checks its arguments into the runtime's
:class:`~.options.PodOptions` (``self.pod``), or its build configuration, and returns the runtime
so calls chain (MLRun's style). The runtimes (:class:`~.base.KubeRuntime`) own the state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError

if TYPE_CHECKING:
    from typing_extensions import Self

    from .options import PodOptions


class PodSettings:
    """The ``with_*`` methods of a Kubernetes runtime (see the module doc)."""

    kind: str
    command: str
    supports_gpus: bool
    pod: PodOptions
    _appliers: list[Callable[[dict], Any]]
    _build_config: dict[str, Any]

    # pod settings -----------------------------------------------------------------------------
    def with_limits(
        self,
        cpu: Any = None,
        memory: Any = None,
        gpus: int | None = None,
        gpu_type: str = "nvidia.com/gpu",
    ) -> Self:
        """Set resource limits: ``cpu`` ('2', '500m'), ``memory`` ('4Gi'), ``gpus`` (a count)."""
        self.pod.limits.update(self.pod.resources(cpu, memory, "with_limits"))
        if gpus is not None:
            if not self.supports_gpus:
                raise ConfigError(
                    f"gpus: the {self.kind} runtime cannot use GPUs; drop gpus=, or run with "
                    "kind='job' or 'mpijob'"
                )
            self.pod.add_gpus(gpus, gpu_type)
        return self

    def with_requests(self, cpu: Any = None, memory: Any = None) -> Self:
        """Set resource requests: ``cpu`` and ``memory`` as Kubernetes quantities."""
        self.pod.requests.update(self.pod.resources(cpu, memory, "with_requests"))
        return self

    def set_env(self, name: str, value: Any) -> Self:
        """Set a plain environment variable (use :meth:`with_secret_env` for secrets)."""
        self.pod.set_env(name, value)
        return self

    def with_secret_env(
        self, secret: str, key: str | None = None, env_name: str | None = None
    ) -> Self:
        """Read an existing Kubernetes Secret: all keys (``envFrom``) or ``key``."""
        self.pod.add_secret_env(secret, key, env_name)
        return self

    def with_node_selector(self, selector: dict[str, str] | None = None, **labels: str) -> Self:
        """Schedule the pods on nodes with these labels."""
        self.pod.node_selector.update({**(selector or {}), **labels})
        return self

    def with_tolerations(self, *tolerations: Any) -> Self:
        """Add tolerations: dicts with key/operator/value/effect, ``V1Toleration``s, or lists."""
        self.pod.add_tolerations(*tolerations)
        return self

    def with_volume(  # noqa: PLR0913 - one keyword per volume source
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
    ) -> Self:
        """Mount a volume at ``mount_path``.

        Give exactly one source: ``pvc``, ``secret``, ``config_map``, ``empty_dir`` or
        ``host_path``; the volume's name defaults to the source's. Or give a whole volume (a
        ``V1Volume`` or its dict) and its mount: ``with_volume(volume, '/data')`` (or a
        ``V1VolumeMount`` / dict as ``mount``).
        """
        if not isinstance(mount_path, str):
            self.pod.add_raw_volume(mount_path, mount)
            return self
        self.pod.add_volume(
            mount_path,
            name=name,
            pvc=pvc,
            secret=secret,
            config_map=config_map,
            empty_dir=empty_dir,
            host_path=host_path,
            read_only=read_only,
            sub_path=sub_path,
        )
        return self

    def with_service_account(self, name: str) -> Self:
        """Run the pods as this service account."""
        self.pod.set_service_account(name)
        return self

    def with_image_pull_secrets(self, *names: str) -> Self:
        """Pull the image with these ``kubernetes.io/dockerconfigjson`` Secrets (private registry).

        https://kubernetes.io/docs/concepts/containers/images/#specifying-imagepullsecrets-on-a-pod
        """
        self.pod.add_image_pull_secrets(*names)
        return self

    def with_image_pull_policy(self, policy: str) -> Self:
        """Set ``imagePullPolicy`` (default: ``Always`` for a tag, Kubernetes' for a digest).

        A node that has a tag keeps running it when the tag is pushed again unless the policy is
        ``Always``; an image referenced by digest (``repo/img@sha256:...``) is the same image
        wherever it runs (https://kubernetes.io/docs/concepts/containers/images/#image-pull-policy).
        """
        self.pod.set_image_pull_policy(policy)
        return self

    def with_security_context(
        self,
        run_as_user: int | None = 1000,
        run_as_group: int | None = None,
        fs_group: int | None = None,
        read_only_root_filesystem: bool = False,
        seccomp: str = "RuntimeDefault",
    ) -> Self:
        """Run the pods as the Pod Security Standard "restricted" requires.

        Sets ``runAsNonRoot``, a ``RuntimeDefault`` seccomp profile, no privilege escalation and
        every capability dropped (https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted),
        so the pods start in a namespace labelled ``pod-security.kubernetes.io/enforce:
        restricted``. ``run_as_user`` (default 1000) makes an image whose ``USER`` is root run as
        that user; pass None to keep the image's own (non-root) user.

        Args:
            run_as_user: the UID the containers run as (>= 1), or None.
            run_as_group: the GID, or None.
            fs_group: the group that owns mounted volumes, or None.
            read_only_root_filesystem: mount the image's filesystem read-only.
            seccomp: the seccomp profile type (``RuntimeDefault`` or ``Localhost``).
        """
        self.pod.set_security(
            run_as_user, run_as_group, fs_group, read_only_root_filesystem, seccomp
        )
        return self

    def apply(self, fn: Callable[[dict], Any]) -> Self:
        """Edit the workload manifest with ``fn(manifest)`` (in place, or return a new dict)."""
        self._appliers.append(fn)
        return self

    # the image (MLRun: with_code / build_config / deploy) -----------------------------------
    def with_code(self, from_file: str = "", body: str = "") -> Self:
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

    def with_requirements(self, requirements: Any) -> Self:
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
        from ..._seams import seam  # the build layer sits above the runtimes

        return seam("build_runner_image")(self, image, force, **options)

    def deploy(self, **options: Any) -> Any:
        """Build the image as :meth:`build_image` does (MLRun's name for it)."""
        return self.build_image(**options)
