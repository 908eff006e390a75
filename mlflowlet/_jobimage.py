"""The image of a Kubernetes job runner, built once: its code, a notebook converted, requirements.

``new_runner(kind='job', command='train.ipynb').build_image(image=..., requirements=[...])``
converts the notebook here, at build time (:func:`mlflowlet._notebook.notebook_to_script`), and
puts the script in the image's ``/mlflowlet`` beside this mlflowlet; a ``.py`` command is copied
as it is, and ``with_code()`` code becomes ``/mlflowlet/handler.py``. The runner then runs in
that image. The same inputs build once: a second ``build_image``/``deploy`` with nothing changed
reuses the image (``BuildResult.reused``), and ``run()`` builds only what ``with_code`` /
``with_requirements`` asked for and was never built.

This module sits with :mod:`mlflowlet.build`, above the runtimes; the job runtime reaches it
through the ``build_runner_image`` seam (:mod:`mlflowlet._seams`), so it can build itself.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import ConfigError

__all__ = ["build_runner_image", "image_files"]


def _relative(command: str) -> str:
    path = os.path.normpath(command)
    if os.path.isabs(path) or path.startswith(".."):
        raise ConfigError(
            f"command {command!r}: give the script's path relative to this folder, so the image "
            "holds it at the same path under /mlflowlet"
        )
    return path.replace(os.sep, "/")


def image_files(command: str, code: str | None) -> tuple[dict[str, str | bytes], str]:
    """Return ``(files for /mlflowlet, the script a notebook runs as)`` for a runner's code.

    Raises:
        ConfigError: the command file is missing, absolute, or a notebook that cannot convert.
    """
    if code is not None:
        return {}, ""
    first = command.split(" ", 1)[0]
    if not first.endswith((".py", ".ipynb")):
        return {}, ""  # code that is in the image already (a module, a file the image has)
    rel = _relative(first)
    if not os.path.isfile(first):
        raise ConfigError(f"command {first!r} does not exist here: build_image copies it in")
    if first.endswith(".ipynb"):
        from ._notebook import notebook_to_script

        script = rel[: -len(".ipynb")] + ".py"
        return {script: notebook_to_script(first)}, script
    with open(first, encoding="utf-8") as fh:
        return {rel: fh.read()}, ""


def build_runner_image(runner: Any, image: str = "", force: bool = False, **options: Any) -> Any:
    """Build ``runner``'s image (see the module docstring) and make the runner use it.

    Args:
        runner: a ``KubeJobRuntime`` (or MPIJob/Spark runtime).
        image: the reference to build (default: the runner's ``image``).
        force: build even when the same inputs were built before.
        **options: :func:`mlflowlet.build.build_image` options (``requirements``,
            ``base_image``, ``commands``, ``builder``, ``push``, ``dry_run``, kaniko's).

    Returns:
        The :class:`mlflowlet.build.BuildResult`.
    """
    from .build import build_image

    image = image or runner.image
    if not image:
        raise ConfigError(
            "build_image needs the image to build: runner.build_image(image='repo/name:tag')"
        )
    config = runner._build_config
    code = config.get("code")
    files, script = image_files(runner.command, code)
    requirements = options.pop("requirements", None) or config.get("requirements")
    result = build_image(
        image,
        requirements=requirements,
        inline_code=code,
        files=files or None,
        reuse=not force,
        **options,
    )
    runner.image, runner._notebook_script = image, script
    if not options.get("dry_run"):
        config["built"] = result.digest
    return result
