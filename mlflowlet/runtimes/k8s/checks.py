"""What the Kubernetes runtimes and the kaniko builder check before anything is submitted.

One place for: image references (the OCI distribution grammar), DNS-1123 names, resource
quantities, and validating a manifest (the official OpenAPI schemas through
``kubernetes-validate`` in strict mode, plus what an API server refuses that the schema lets
through). ``kubernetes`` and ``kubernetes_validate`` are imported inside the functions that use
them.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import ConfigError, MissingDependencyError

K8S_VERSION = "1.30"  # the schema set of kubernetes-validate the manifests are checked against
MANAGED_BY = {"app.kubernetes.io/managed-by": "mlflowlet"}
SECRETS_KEY = "MLFLOWLET_EXEC_SECRETS"

# The OCI distribution reference grammar (github.com/distribution/reference, regexp.go).
_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REF = re.compile(rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# apimachinery's Quantity grammar, as the CRDs spell it (no sign: a negative size is refused)
QUANTITY = re.compile(
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)"
    r"|(\.[0-9]+))))?$"
)
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def client() -> Any:
    """Return ``kubernetes.client`` (``MissingDependencyError`` naming the ``k8s`` extra)."""
    try:
        from kubernetes import client as k8s_client
    except ImportError:
        raise MissingDependencyError("kubernetes", "k8s") from None
    return k8s_client


def check_image(image: str, what: str = "image") -> str:
    """Return ``image`` when it is a valid OCI reference, else raise ``ConfigError``."""
    if not isinstance(image, str) or not image:
        raise ConfigError(f"{what} is required: give a reference such as 'repo/name:tag'")
    match = IMAGE_REF.match(image)
    if match is None or len(match["name"]) > 255:
        raise ConfigError(
            f"{what} {image!r} is not a valid image reference: use [registry[:port]/]path[:tag]"
            "[@digest] with a lowercase path, e.g. 'ghcr.io/team/train:1.0'"
        )
    return image


def dns_name(*parts: str, max_len: int = 63) -> str:
    """Join ``parts`` into a DNS-1123 label (lowercase, ``-``, at most ``max_len`` characters)."""
    text = "-".join(p for p in parts if p)
    text = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    text = re.sub(r"-{2,}", "-", text)[:max_len].strip("-")
    return text or "mlflowlet"


def check_dns_label(name: str, where: str) -> None:
    """Raise ``ConfigError`` unless ``name`` is a DNS-1123 label."""
    if not isinstance(name, str) or len(name) > 63 or not DNS1123_LABEL.match(name):
        raise ConfigError(
            f"{where} {name!r} is not a DNS-1123 label: at most 63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit"
        )


def check_quantity(value: Any, where: str) -> str:
    """Return ``value`` as a Kubernetes quantity string, or raise ``ConfigError`` naming it."""
    text = str(value).strip() if value is not None else ""
    if isinstance(value, bool) or not QUANTITY.match(text):
        raise ConfigError(
            f"{where} {value!r} is not a resource quantity: use e.g. 500m, 2, 1.5, 512Mi, 4Gi"
        )
    return text


# validation ------------------------------------------------------------------------------------
def validate(manifest: dict, version: str = K8S_VERSION) -> dict:
    """Check a manifest as an API server would; return it, or raise ``ConfigError``.

    Built-in kinds are validated against the official OpenAPI schema of ``version`` in strict
    mode (an unknown field is an error); pod templates inside custom resources (MPIJob) are
    validated as ``v1/PodTemplate``. Then the checks the schema lets through: DNS-1123 names,
    label syntax, a Job's ``restartPolicy``, resource quantities, environment variable names.

    Raises:
        ConfigError: naming the field path and what is wrong.
    """
    kind = manifest.get("kind", "")
    if kind in ("Job", "Secret", "ConfigMap", "Pod", "PodTemplate"):
        _schema_check(manifest, version, kind)
    for path, template in _pod_templates(manifest):
        if kind not in ("Job", "Pod", "PodTemplate"):
            wrapper = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "check"},
                "template": template,
            }
            _schema_check(wrapper, version, kind, prefix=path)
        _check_pod(template.get("spec") or {}, f"{path}.spec", kind)
        _check_labels((template.get("metadata") or {}).get("labels"), f"the {kind} {path}")
    meta = manifest.get("metadata") or {}
    check_dns_label(meta.get("name", ""), f"{kind} metadata.name")
    _check_labels(meta.get("labels"), f"the {kind} metadata")
    return manifest


def _check_labels(labels: dict | None, where: str) -> None:
    from ..._k8s_labels import check_label

    for key, value in (labels or {}).items():
        check_label(key, value, f"{where}.labels")


def _schema_check(manifest: dict, version: str, kind: str, prefix: str = "") -> None:
    try:
        import kubernetes_validate
    except ImportError:
        raise MissingDependencyError("kubernetes-validate", "k8s") from None
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        inner = ".".join(str(p) for p in exc.path)
        if prefix:  # report the path inside the custom resource, not the wrapper's
            inner = prefix + inner[len("template") :] if inner.startswith("template") else prefix
        raise ConfigError(
            f"the {kind} manifest is invalid at {inner or '<root>'}: {short(exc.message)} "
            f"(Kubernetes {exc.version} schema)"
        ) from None


def short(text: str) -> str:
    """Return ``text`` on one line, at most 200 characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= 200 else text[:199] + "…"


def _pod_templates(manifest: dict) -> list[tuple[str, dict]]:
    kind, spec = manifest.get("kind"), manifest.get("spec") or {}
    if kind == "Job":
        return [("spec.template", spec.get("template") or {})]
    if kind == "MPIJob":
        return [
            (f"spec.mpiReplicaSpecs.{role}.template", rs.get("template") or {})
            for role, rs in (spec.get("mpiReplicaSpecs") or {}).items()
        ]
    return []


def _check_pod(spec: dict, path: str, kind: str) -> None:
    policy = spec.get("restartPolicy")
    if kind == "Job" and policy not in ("Never", "OnFailure"):
        raise ConfigError(
            f"the Job manifest is invalid at {path}.restartPolicy: {policy!r}; a Job's pods "
            "must use 'Never' or 'OnFailure'"
        )
    for group in ("initContainers", "containers"):
        for i, ctr in enumerate(spec.get(group) or []):
            where = f"{path}.{group}[{i}]"
            check_dns_label(ctr.get("name", ""), f"{where}.name")
            if ctr.get("image"):
                check_image(ctr["image"], f"{where}.image")
            for part in ("limits", "requests"):
                for res, value in ((ctr.get("resources") or {}).get(part) or {}).items():
                    check_quantity(value, f"{where}.resources.{part}.{res}")
            for j, env in enumerate(ctr.get("env") or []):
                if not ENV_NAME.match(env.get("name", "")):
                    raise ConfigError(f"{where}.env[{j}].name {env.get('name')!r} is not valid")
    check_dns_label(spec.get("serviceAccountName") or "default", f"{path}.serviceAccountName")
