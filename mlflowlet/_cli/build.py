"""``mlflowlet build``: write a Dockerfile and build context, then build (and push) the image."""

from __future__ import annotations

from typing import Annotated

import typer

ORDER = 60
_Opt = typer.Option
_EPILOG = (
    "Examples:\n\n"
    "mlflowlet build --runtime-image ghcr.io/team/mlflowlet:0.1 --push\n\n"
    "mlflowlet build ghcr.io/team/train:1.0 -r scikit-learn --source . --dry-run\n\n"
    "mlflowlet build ghcr.io/team/train:1.0 --requirements-file requirements.txt --push\n\n"
    "mlflowlet build ghcr.io/team/train:1.0 --builder kaniko --registry-secret regcred --push"
)


def register(app: typer.Typer) -> None:
    """Add ``build`` to the app."""
    app.command("build", epilog=_EPILOG)(build)


def build(  # noqa: PLR0913 - one option per flag of the command
    image: Annotated[
        str | None,
        typer.Argument(
            help="the image to build, e.g. ghcr.io/team/train:1.0 (with --runtime-image: "
            "default mlflowlet/mlflowlet:VERSION)"
        ),
    ] = None,
    runtime_image: Annotated[
        bool,
        _Opt(
            "--runtime-image",
            help="build the official runtime image (python:3.11-slim + mlflowlet[s3,pandas])",
        ),
    ] = False,
    extras: Annotated[
        str | None, _Opt(help="--runtime-image: the mlflowlet extras, comma-separated")
    ] = None,
    base_image: Annotated[str, _Opt(help="the FROM image")] = "python:3.11-slim",
    requirement: Annotated[
        list[str] | None, _Opt("-r", "--requirement", help="a pip requirement (repeatable)")
    ] = None,
    requirements_file: Annotated[str | None, _Opt(help="a requirements.txt file")] = None,
    code: Annotated[str | None, _Opt(help="a .py file copied in as /mlflowlet/handler.py")] = None,
    source: Annotated[
        str | None, _Opt(help="a folder, a tarball, or a git:// / https:// repository URL")
    ] = None,
    command: Annotated[
        list[str] | None, _Opt("-c", "--command", help="a RUN command (repeatable)")
    ] = None,
    with_mlflowlet: Annotated[bool, _Opt(help="install this mlflowlet in the image")] = True,
    builder: Annotated[
        str | None, _Opt(help="docker | podman | buildah | kaniko (default: first available)")
    ] = None,
    push: Annotated[bool, _Opt("--push", help="push the image after building")] = False,
    dry_run: Annotated[
        bool, _Opt("--dry-run", help="write the Dockerfile and context only")
    ] = False,
    context_dir: Annotated[str | None, _Opt(help="where to write the build context")] = None,
    namespace: Annotated[str, _Opt(help="namespace of the kaniko Job")] = "default",
    registry_secret: Annotated[
        str, _Opt(help="kaniko: a dockerconfigjson Secret to push with")
    ] = "",
) -> None:
    """Write a deterministic Dockerfile and build context, then build the image."""
    from ..build import build_image
    from ._common import usage_error

    if runtime_image:
        if requirement or requirements_file or code or source or command:
            raise usage_error(
                "--runtime-image builds the official image as it is: drop "
                "-r/--requirements-file/--code/--source/--command"
            )
        return _runtime_image(
            image,
            base_image,
            extras,
            builder,
            push,
            dry_run,
            context_dir,
            namespace,
            registry_secret,
        )
    if extras:
        raise usage_error("--extras goes with --runtime-image")
    if not image:
        raise usage_error("give the IMAGE to build (or --runtime-image)")
    if requirement and requirements_file:
        raise usage_error("give -r/--requirement or --requirements-file, not both")
    inline = None
    if code:
        try:
            with open(code, encoding="utf-8") as fh:
                inline = fh.read()
        except OSError as exc:
            raise usage_error(f"--code {code!r}: {exc.strerror}") from None
    result = build_image(
        image,
        base_image=base_image,
        requirements=requirements_file or requirement,
        inline_code=inline,
        source=source,
        commands=command,
        with_mlflowlet=with_mlflowlet,
        builder=builder,
        push=push,
        context_dir=context_dir,
        dry_run=dry_run,
        namespace=namespace,
        registry_secret=registry_secret,
    )
    _report(result)


def _runtime_image(
    image, base_image, extras, builder, push, dry_run, context_dir, namespace, registry_secret
) -> None:
    from ..build import RUNTIME_IMAGE, build_runtime_image

    kwargs = {"extras": tuple(e.strip() for e in extras.split(",") if e.strip())} if extras else {}
    result = build_runtime_image(
        image or RUNTIME_IMAGE,
        base_image=base_image,
        builder=builder,
        push=push,
        context_dir=context_dir,
        dry_run=dry_run,
        namespace=namespace,
        registry_secret=registry_secret,
        **kwargs,
    )
    _report(result)
    if result.built:
        print(f"use it:     export MLFLOWLET_IMAGE={result.image}")


def _report(result) -> None:
    print(f"dockerfile: {result.dockerfile}")
    print(f"context:    {result.context_dir} ({result.digest})")
    if result.built:
        print(
            f"built:      {result.image} with {result.builder}"
            f"{' (pushed)' if result.pushed else ''}"
        )
    else:
        print(
            f"not built (--dry-run): build it with `docker build -t {result.image} "
            f"{result.context_dir}`"
        )
