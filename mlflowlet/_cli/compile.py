"""``mlflowlet compile FILE.py:NAME --target kfp|argo``: compile a pipeline (and ``--check`` it)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from ._common import parse_pairs, usage_error

ORDER = 60
_Opt = typer.Option
_Pairs = list[str] | None

# Flags ``compile`` and ``submit`` share, spelled once.
PipelineArg = Annotated[
    str, typer.Argument(metavar="FILE.py:NAME", help="the pipeline: file.py:name or module:name")
]
ImageOpt = Annotated[str | None, _Opt("--image", help="default container image of the steps")]
EnvOpt = Annotated[
    _Pairs, _Opt("--env", "-e", metavar="KEY=VALUE", help="environment variable of every step")
]
SecretOpt = Annotated[
    _Pairs,
    _Opt(
        "--secret", metavar="ENV=SECRET:KEY", help="env var from a Kubernetes secret (a reference)"
    ),
]
KindOpt = Annotated[str | None, _Opt("--kind", help="Argo: Workflow | WorkflowTemplate")]
ServiceAccountOpt = Annotated[
    str | None, _Opt("--service-account", help="the pods' service account")
]
ArtifactPathOpt = Annotated[
    str | None,
    _Opt(
        "--artifact-path",
        metavar="URL",
        help="where the pods write artifacts (s3://bucket/prefix); required with --dbpath",
    ),
]
TokenSecretOpt = Annotated[
    str | None,
    _Opt(
        "--token-secret",
        metavar="SECRET:KEY",
        help="the Kubernetes secret holding the mlflowlet server's API token",
    ),
]
NoTrackingOpt = Annotated[
    bool, _Opt("--no-tracking", help="record nothing (no run DB reachable from the pods)")
]
RepositoryRefOpt = Annotated[
    str | None,
    _Opt(
        "--artifact-repository-ref",
        metavar="CONFIGMAP:KEY",
        help="Argo: the artifact repository (default: the namespace's or controller's)",
    ),
]
ArgoVersionOpt = Annotated[
    str | None, _Opt("--argo-version", help="Argo: the release to compile for, 4 (default) or 3")
]
BuildOpt = Annotated[
    str | None,
    _Opt(
        "--build",
        metavar="IMAGE",
        help="build the steps' code (and this mlflowlet) into IMAGE and compile against it",
    ),
]
RequirementsOpt = Annotated[
    str | None, _Opt("--requirements", metavar="FILE", help="with --build: pip requirements")
]
PushOpt = Annotated[bool, _Opt("--push", help="with --build: push IMAGE after building it")]
BuilderOpt = Annotated[
    str | None, _Opt("--builder", help="with --build: docker | podman | buildah | kaniko")
]
HasMlflowletOpt = Annotated[
    bool,
    _Opt(
        "--image-has-mlflowlet",
        help="the --image is a bare base image name that does have mlflowlet (no warning)",
    ),
]


def built_image(
    pipe: Any,
    image: str | None,
    build: str | None,
    requirements: str | None,
    push: bool,
    builder: str | None,
) -> str | None:
    """Return the image to compile with: ``--image``, or the one ``--build`` builds now."""
    if not build:
        if requirements or push or builder:
            raise usage_error("--requirements, --push and --builder go with --build IMAGE")
        return image
    if image:
        raise usage_error("give --image (an image you have) or --build IMAGE (one built now)")
    from ..build import build_pipeline_image

    result = build_pipeline_image(
        pipe, build, requirements=requirements, builder=builder, push=push
    )
    sys.stderr.write(
        f"built {result.image} with {result.builder}{' (pushed)' if result.pushed else ''} "
        f"from {result.context_dir} ({result.digest})\n"
    )
    return result.image_ref or result.image  # pushed: compiled against its digest


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Print mlflowlet's warnings as ``warning: ...`` lines on stderr (no source lines)."""
    import warnings

    from ..errors import MlflowletWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MlflowletWarning)
        try:
            yield
        finally:
            for item in caught:
                if issubclass(item.category, MlflowletWarning):
                    sys.stderr.write(f"warning: {item.message}\n")
                else:
                    warnings.showwarning(
                        item.message, item.category, item.filename, item.lineno, item.file
                    )


def register(app: typer.Typer) -> None:
    """Add ``compile`` to the app."""
    app.command(
        "compile",
        epilog="Examples:\n\nmlflowlet compile examples/train_eval.py:train_eval --target argo "
        "-o train_eval.argo.yaml --image repo/img:tag -p rows=200 --check\n\n"
        "mlflowlet compile examples/train_eval.py:train_eval --build ghcr.io/team/train:1 "
        "--requirements requirements.txt --push -o train_eval.kfp.yaml",
    )(compile_command)


def compile_options(
    env: _Pairs,
    secret: _Pairs,
    dbpath: str | None,
    schedule: str | None,
    kind: str | None,
    service_account: str | None,
    image_has_mlflowlet: bool = False,
    no_tracking: bool = False,
    **more: str | None,
) -> dict[str, Any]:
    """Turn the shared ``compile``/``submit`` flags into compile options.

    ``more``: further string options (``artifact_path``, ``token_secret``...), kept when given.
    """
    options: dict[str, Any] = {k: v for k, v in more.items() if v}
    if image_has_mlflowlet:
        options["image_has_mlflowlet"] = True
    if no_tracking:
        options["tracking"] = False
    if env:
        options["env"] = parse_pairs(env, "--env")
    if secret:
        options["secrets"] = parse_pairs(secret, "--secret")
    for key, value in (
        ("dbpath", dbpath),
        ("schedule", schedule),
        ("kind", kind),
        ("service_account", service_account),
    ):
        if value:
            options[key] = value
    return options


def literal_params(items: _Pairs) -> dict[str, Any]:
    """``-p k=v`` values parsed as JSON/Python literals JSON holds (else kept as strings)."""
    from .._coerce import parse_cli

    return {k: parse_cli(v) for k, v in parse_pairs(items, "--param").items()}


def compile_command(
    pipeline: PipelineArg,
    target: Annotated[str, _Opt("--target", "-t", help="kfp | argo (or a plugin target)")] = "kfp",
    output: Annotated[
        str | None, _Opt("--output", "-o", help="YAML file (default: stdout)")
    ] = None,
    image: ImageOpt = None,
    param: Annotated[
        _Pairs,
        _Opt("--param", "-p", metavar="KEY=VALUE", help="pipeline parameter default to compile in"),
    ] = None,
    env: EnvOpt = None,
    secret: SecretOpt = None,
    dbpath: Annotated[
        str | None, _Opt(help="the run DB the pods record to (a mlflowlet server URL)")
    ] = None,
    artifact_path: ArtifactPathOpt = None,
    token_secret: TokenSecretOpt = None,
    no_tracking: NoTrackingOpt = False,
    schedule: Annotated[str | None, _Opt(help="cron expression (Argo: a CronWorkflow)")] = None,
    kind: KindOpt = None,
    service_account: ServiceAccountOpt = None,
    artifact_repository_ref: RepositoryRefOpt = None,
    argo_version: ArgoVersionOpt = None,
    check: Annotated[
        bool,
        _Opt(
            "--check",
            help="run the compiled workflow's commands locally and compare with a local run",
        ),
    ] = False,
    secret_value: Annotated[
        _Pairs,
        _Opt(
            "--secret-value",
            metavar="SECRET:KEY=VALUE",
            help="for --check: a value of a referenced secret",
        ),
    ] = None,
    build: BuildOpt = None,
    requirements: RequirementsOpt = None,
    push: PushOpt = False,
    builder: BuilderOpt = None,
    image_has_mlflowlet: HasMlflowletOpt = False,
) -> None:
    """Compile a pipeline to Kubeflow Pipelines v2 or Argo Workflows YAML."""
    from ..compilers import compile_text, load_pipeline

    pipe = load_pipeline(pipeline)
    image = built_image(pipe, image, build, requirements, push, builder)
    params = literal_params(param)
    options = compile_options(
        env,
        secret,
        dbpath,
        schedule,
        kind,
        service_account,
        image_has_mlflowlet,
        no_tracking,
        artifact_path=artifact_path,
        token_secret=token_secret,
        artifact_repository_ref=artifact_repository_ref,
        argo_version=argo_version,
    )
    with warnings_as_lines():
        text = compile_text(pipe, target=target, image=image, params=params, **options)
    if output:
        from ..compilers import _write

        _write(output, text)
    elif not check:
        sys.stdout.write(text)
    if check:
        from ..compilers.check import check as run_check

        values: dict[str, dict[str, str]] = {}
        for ref, value in parse_pairs(secret_value, "--secret-value").items():
            name, sep, key = ref.partition(":")
            if not sep:
                raise usage_error(f"--secret-value {ref!r} is not SECRET:KEY=VALUE")
            values.setdefault(name, {})[key] = value
        with warnings_as_lines():  # the same warnings again: say them once
            import warnings

            warnings.simplefilter("ignore")
            report = run_check(
                pipe, target=target, image=image, params=params, secret_values=values, **options
            )
        sys.stdout.write(report.summary() + "\n")
        if not report.ok:
            raise typer.Exit(1)
