"""What every pod of a Kubernetes runtime gets: resources, environment, volumes, scheduling.

:class:`PodOptions` holds the settings the runtimes' ``with_*`` methods collect, already checked
(quantities, names, client models), so the manifest builders in :mod:`.manifests` only assemble
them. It knows nothing of runs or of the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError
from . import checks

PULL_POLICIES = ("Always", "IfNotPresent", "Never")


@dataclass
class PodOptions:
    """The pod settings of one runtime (see the runtimes' ``with_*`` methods)."""

    limits: dict[str, str] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    secret_refs: dict[str, tuple[str, str]] = field(default_factory=dict)  # env -> (secret, key)
    env_from: list[str] = field(default_factory=list)  # Secrets read whole (envFrom)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    service_account: str = ""
    working_dir: str = ""
    image_pull_secrets: list[str] = field(default_factory=list)
    image_pull_policy: str = ""  # '': Always for a tag, the default for a digest
    pod_security: dict[str, Any] = field(default_factory=dict)  # PodSecurityContext
    container_security: dict[str, Any] = field(default_factory=dict)  # SecurityContext

    # resources --------------------------------------------------------------------------------
    @staticmethod
    def resources(cpu: Any, memory: Any, where: str) -> dict[str, str]:
        """Return ``{'cpu': ..., 'memory': ...}`` for the quantities given, checked."""
        out = {}
        if cpu is not None:
            out["cpu"] = checks.check_quantity(cpu, f"{where} cpu")
        if memory is not None:
            out["memory"] = checks.check_quantity(memory, f"{where} memory")
        return out

    def add_gpus(self, gpus: Any, gpu_type: str) -> None:
        """Limit the pod to ``gpus`` devices of ``gpu_type`` (a whole number)."""
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
            raise ConfigError(f"with_limits gpus={gpus!r} must be a whole number >= 0")
        self.limits[gpu_type] = str(gpus)

    # environment ------------------------------------------------------------------------------
    def set_env(self, name: Any, value: Any) -> None:
        """Set a plain environment variable."""
        if not checks.ENV_NAME.match(str(name)):
            raise ConfigError(f"set_env: {name!r} is not a valid environment variable name")
        self.env[str(name)] = str(value)

    def add_secret_env(self, secret: str, key: str | None, env_name: str | None) -> None:
        """Read Secret ``secret``: every key (``envFrom``), or ``key`` as ``env_name``."""
        checks.check_dns_label(secret, "with_secret_env secret")
        if key is None:
            self.env_from.append(secret)
        else:
            self.secret_refs[env_name or key] = (secret, key)

    # scheduling -------------------------------------------------------------------------------
    def add_tolerations(self, *tolerations: Any) -> None:
        """Add tolerations: dicts, ``V1Toleration``s, or lists of them."""
        from .manifests import serialize, to_model

        k8s = checks.client()
        flat = [t for item in tolerations for t in (item if isinstance(item, list) else [item])]
        self.tolerations += [serialize(to_model(k8s.V1Toleration, t, "toleration")) for t in flat]

    def set_service_account(self, name: str) -> None:
        """Run the pods as this service account."""
        checks.check_dns_label(name, "service account")
        self.service_account = name

    def add_image_pull_secrets(self, *names: str) -> None:
        """Pull the image with these ``kubernetes.io/dockerconfigjson`` Secrets."""
        for name in names:
            checks.check_dns_label(name, "image pull secret")
            if name not in self.image_pull_secrets:
                self.image_pull_secrets.append(name)

    def set_image_pull_policy(self, policy: str) -> None:
        """Set ``imagePullPolicy``: ``Always``, ``IfNotPresent`` or ``Never``."""
        if policy not in PULL_POLICIES:
            raise ConfigError(
                f"image_pull_policy {policy!r}: use one of {', '.join(PULL_POLICIES)}"
            )
        self.image_pull_policy = policy

    def pull_policy(self, image: str) -> str | None:
        """Return ``imagePullPolicy`` for ``image``: ``Always`` for a (mutable) tag.

        A node that has an image keeps running it when the tag is pushed again unless the
        policy is ``Always``; a digest names one image, so Kubernetes' default is right there.
        https://kubernetes.io/docs/concepts/containers/images/#image-pull-policy
        """
        if self.image_pull_policy:
            return self.image_pull_policy
        return None if "@" in image else "Always"

    def set_security(  # noqa: PLR0913 - one keyword per securityContext field
        self,
        run_as_user: int | None,
        run_as_group: int | None,
        fs_group: int | None,
        read_only_root_filesystem: bool,
        seccomp: str,
    ) -> None:
        """Set the pod and container security contexts (see ``with_security_context``)."""
        for what, value in (
            ("run_as_user", run_as_user),
            ("run_as_group", run_as_group),
            ("fs_group", fs_group),
        ):
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (1 if what == "run_as_user" else 0)
            ):
                low = "1 (a non-root user)" if what == "run_as_user" else "0"
                raise ConfigError(f"with_security_context {what}={value!r} must be an int >= {low}")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            raise ConfigError(
                f"with_security_context seccomp={seccomp!r}: the restricted policy allows "
                "'RuntimeDefault' or 'Localhost'"
            )
        pod: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": seccomp}}
        for key, value in (
            ("runAsUser", run_as_user),
            ("runAsGroup", run_as_group),
            ("fsGroup", fs_group),
        ):
            if value is not None:
                pod[key] = value
        self.pod_security = pod
        self.container_security = {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": bool(read_only_root_filesystem),
            "runAsNonRoot": True,
        }

    # volumes ----------------------------------------------------------------------------------
    def add_volume(  # noqa: PLR0913 - one keyword per volume source
        self,
        mount_path: str,
        *,
        name: str = "",
        pvc: str = "",
        secret: str = "",
        config_map: str = "",
        empty_dir: bool = False,
        host_path: str = "",
        read_only: bool = False,
        sub_path: str = "",
    ) -> None:
        """Mount one volume source at ``mount_path`` (see ``KubeRuntime.with_volume``)."""
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
        vol_name = checks.dns_name(
            name or pvc or secret or config_map or "vol",
            str(len(self.volumes)) if not name else "",
        )
        mount = {
            "name": vol_name,
            "mountPath": mount_path,
            "readOnly": read_only or None,
            "subPath": sub_path or None,
        }
        self.volumes.append(
            ({"name": vol_name, **given}, {k: v for k, v in mount.items() if v is not None})
        )

    def add_raw_volume(self, volume: Any, mount: Any) -> None:
        """Mount a whole volume (a ``V1Volume`` or its dict) with its mount (or a path)."""
        from .manifests import serialize, to_model

        k8s = checks.client()
        vol = serialize(to_model(k8s.V1Volume, volume, "with_volume volume"))
        if isinstance(mount, str):
            mount = {"name": vol.get("name"), "mountPath": mount}
        if mount is None:
            raise ConfigError(
                f"with_volume({vol.get('name')!r} volume) needs where to mount it: "
                "with_volume(volume, '/mount/path')"
            )
        mnt = serialize(to_model(k8s.V1VolumeMount, mount, "with_volume mount"))
        self.volumes.append((vol, mnt))
