"""Kubernetes-safe names, made in one place for every compiler.

Argo template and task names, KFP component and task names, and Kubernetes object names are
DNS-1123 labels: lowercase letters, digits and ``-``, starting and ending with an alphanumeric,
at most 63 characters (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/).
Two different step names that sanitise to the same label are an error, never a silent rename,
so a compiled name always points back at one step.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable

from ..errors import CompileError

MAX_LABEL = 63
_BAD = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
_IMAGE = re.compile(
    r"^(?:(?P<host>[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)


def dns1123(name: str, max_length: int = MAX_LABEL) -> str:
    """Return ``name`` as a DNS-1123 label (``Train_Model.v2`` → ``train-model-v2``).

    Raises:
        CompileError: nothing alphanumeric is left of ``name``.
    """
    label = _DASHES.sub("-", _BAD.sub("-", name.lower())).strip("-")
    label = label[:max_length].rstrip("-")
    if not label:
        raise CompileError(
            f"name {name!r} has no letter or digit to build a Kubernetes name from; rename it"
        )
    return label


def unique_labels(names: Iterable[str], what: str = "step") -> dict[str, str]:
    """Map each name to its DNS-1123 label; two names on one label are an error.

    Raises:
        CompileError: two names collide after sanitising (names both, and how to fix it).
    """
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in names:
        label = dns1123(name)
        if label in seen and seen[label] != name:
            raise CompileError(
                f"{what} names {seen[label]!r} and {name!r} both become {label!r} as Kubernetes "
                f"names; rename one (e.g. step.with_options(name=...))"
            )
        seen[label] = name
        out[name] = label
    return out


def param_name(name: str) -> str:
    """Return a parameter or artifact name safe in both targets (``[A-Za-z0-9_-]``).

    Argo accepts more, but KFP input names must be Python identifiers; ``.`` and ``-`` become
    ``_`` there (see :func:`kfp_name`).
    """
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def kfp_name(name: str) -> str:
    """Return ``name`` as a Python identifier for a KFP component input or output.

    Python keywords get a trailing ``_`` (a step's ``return`` value is the result ``return``).
    """
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    ident = ident if ident and not ident[0].isdigit() else f"_{ident}"
    return f"{ident}_" if keyword.iskeyword(ident) else ident


def check_image(image: str, where: str) -> str:
    """Return ``image`` when it is a valid image reference.

    Raises:
        CompileError: an empty or malformed reference (names ``where`` it came from).
    """
    if not image:
        raise CompileError(
            f"{where} has no container image; pass image='repo/name:tag' to "
            "compile() (or --image), or set @step(image=...) / @pipeline(image=...)"
        )
    if not _IMAGE.match(image):
        raise CompileError(
            f"{where}: {image!r} is not a valid image reference (expected "
            "[registry/]name[:tag][@sha256:digest], lowercase name)"
        )
    return image
