"""Which image a compiled step runs in, and a warning when that image cannot have mlflowlet.

Order: the step's own ``image``, ``compile(image=...)`` / ``--image``, ``@pipeline(image=...)``,
then ``MLFLOWLET_IMAGE``. Every compiled container runs ``python -m mlflowlet.entrypoint``, so an
official base image as it is (``python:3.11-slim``, ``alpine``, ``ubuntu:22.04``: a Docker Hub
"library" image, no namespace of its own) fails at its first line; compiling says so, once per
image, unless the step (or the compile call) sets ``image_has_mlflowlet=True``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from ..errors import BareImageWarning, CompileError

__all__ = ["BARE_IMAGES", "default_image", "is_bare_image", "step_image", "warn_bare_images"]

BARE_IMAGES = ("python", "pypy", "alpine", "ubuntu", "debian", "busybox", "centos", "fedora")


def default_image() -> str:
    """Return ``MLFLOWLET_IMAGE`` (``''`` when unset)."""
    from ..settings import get_settings

    return get_settings().image


def step_image(*candidates: str, where: str) -> str:
    """Return the first image given, else ``MLFLOWLET_IMAGE``.

    Raises:
        CompileError: none at all, naming ``where`` and every way to give one.
    """
    image = next((c for c in candidates if c), "") or default_image()
    if not image:
        raise CompileError(
            f"{where} has no container image: pass image='repo/name:tag' to compile() (or "
            "--image), set @step(image=...) / @pipeline(image=...) or MLFLOWLET_IMAGE, or let "
            "`mlflowlet compile --build repo/name:tag` build one from your code"
        )
    return image


def is_bare_image(image: str) -> bool:
    """Return whether ``image`` is an official base image with no namespace (``python:3.11``)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        if parts[0] not in ("docker.io", "index.docker.io", "registry-1.docker.io"):
            return False  # another registry: whatever it is, it is not Docker Hub's base image
        parts = parts[1:]
    if len(parts) == 2 and parts[0] == "library":
        parts = parts[1:]
    return len(parts) == 1 and parts[0] in BARE_IMAGES


def warn_bare_images(steps: Iterable[tuple[str, str, bool]], stacklevel: int = 2) -> list[str]:
    """Warn once per bare image, naming the steps using it; return the warning texts.

    Args:
        steps: ``(step name, image, has mlflowlet)`` of every step.
        stacklevel: passed to ``warnings.warn``.
    """
    users: dict[str, list[str]] = {}
    for name, image, has_mlflowlet in steps:
        if image and not has_mlflowlet and is_bare_image(image):
            users.setdefault(image, []).append(name)
    texts = []
    for image, names in users.items():
        listed = ", ".join(repr(n) for n in names)
        text = (
            f"step(s) {listed} run in {image!r}, a bare base image without mlflowlet: their "
            "`python -m mlflowlet.entrypoint` fails with 'No module named mlflowlet'. Build an "
            "image (mlflowlet compile --build repo/img:tag, or mlflowlet build --runtime-image) "
            "and pass it, or set image_has_mlflowlet=True on a step whose image has it"
        )
        warnings.warn(text, BareImageWarning, stacklevel=stacklevel + 1)
        texts.append(text)
    return texts
