"""``mlflowlet submit FILE.py:NAME --target kfp|argo --host URL``: run a pipeline on an engine."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .compile import (
    BuilderOpt,
    BuildOpt,
    EnvOpt,
    HasMlflowletOpt,
    ImageOpt,
    KindOpt,
    PipelineArg,
    PushOpt,
    RequirementsOpt,
    SecretOpt,
    ServiceAccountOpt,
    built_image,
    compile_options,
    literal_params,
    warnings_as_lines,
)

ORDER = 61
_Opt = typer.Option
_Pairs = list[str] | None


def register(app: typer.Typer) -> None:
    """Add ``submit`` to the app."""
    app.command(
        "submit",
        epilog="Example: mlflowlet submit examples/train_eval.py:train_eval --target argo "
        "--host https://argo.example.com --token $ARGO_TOKEN --image repo/img:tag -p rows=500",
    )(submit_command)


def submit_command(
    pipeline: PipelineArg,
    target: Annotated[str, _Opt("--target", "-t", help="kfp | argo")] = "kfp",
    host: Annotated[
        str | None, _Opt(help="KFP endpoint or Argo Server URL (default $KFP_HOST / $ARGO_SERVER)")
    ] = None,
    param: Annotated[
        _Pairs, _Opt("--param", "-p", metavar="KEY=VALUE", help="pipeline parameter of this run")
    ] = None,
    image: ImageOpt = None,
    experiment: Annotated[str | None, _Opt(help="KFP experiment")] = None,
    run_name: Annotated[str | None, _Opt("--name", help="KFP run name")] = None,
    token: Annotated[str | None, _Opt(help="bearer token (default $ARGO_TOKEN for Argo)")] = None,
    namespace: Annotated[str | None, _Opt(help="namespace (Argo default: argo)")] = None,
    env: EnvOpt = None,
    secret: SecretOpt = None,
    dbpath: Annotated[str | None, _Opt(help="MLFLOWLET_DBPATH of the steps")] = None,
    schedule: Annotated[
        str | None, _Opt(help="cron: a KFP recurring run / Argo CronWorkflow")
    ] = None,
    kind: KindOpt = None,
    service_account: ServiceAccountOpt = None,
    wait: Annotated[bool, _Opt("--wait", help="wait for the run to end")] = False,
    build: BuildOpt = None,
    requirements: RequirementsOpt = None,
    push: PushOpt = False,
    builder: BuilderOpt = None,
    image_has_mlflowlet: HasMlflowletOpt = False,
) -> None:
    """Compile a pipeline and submit it to Kubeflow Pipelines or an Argo Server."""
    from ..compilers import load_pipeline
    from ..compilers.submit import submit

    pipe = load_pipeline(pipeline)
    image = built_image(pipe, image, build, requirements, push, builder)
    options = compile_options(
        env, secret, dbpath, schedule, kind, service_account, image_has_mlflowlet
    )
    with warnings_as_lines():
        handle = submit(
            pipe,
            target=target,
            host=host or "",
            arguments=literal_params(param),
            experiment=experiment or "",
            run_name=run_name or "",
            token=token or "",
            namespace=namespace or "",
            image=image,
            **options,
        )
    sys.stdout.write(f"submitted {handle.kind} {handle.id}: {handle.url}\n")
    if wait:
        final = handle.wait()
        sys.stdout.write(f"{handle.id} {final}\n")
        if handle.state != "completed":
            raise typer.Exit(1)
