"""``mlflowlet compile FILE.py:NAME --target kfp|argo``: compile a pipeline (and ``--check`` it)."""

from __future__ import annotations

import sys
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


def register(app: typer.Typer) -> None:
    """Add ``compile`` to the app."""
    app.command(
        "compile",
        epilog="Example: mlflowlet compile examples/train_eval.py:train_eval --target argo "
        "-o train_eval.argo.yaml --image repo/img:tag -p rows=200 --check",
    )(compile_command)


def compile_options(
    env: _Pairs,
    secret: _Pairs,
    dbpath: str | None,
    schedule: str | None,
    kind: str | None,
    service_account: str | None,
) -> dict[str, Any]:
    """Turn the shared ``compile``/``submit`` flags into compile options."""
    options: dict[str, Any] = {}
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
    """``-p k=v`` values parsed as JSON/Python literals (else kept as strings)."""
    from .._binding import parse_literal

    return {k: parse_literal(v) for k, v in parse_pairs(items, "--param").items()}


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
    dbpath: Annotated[str | None, _Opt(help="MLFLOWLET_DBPATH of the steps (a server URL)")] = None,
    schedule: Annotated[str | None, _Opt(help="cron expression (Argo: a CronWorkflow)")] = None,
    kind: KindOpt = None,
    service_account: ServiceAccountOpt = None,
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
) -> None:
    """Compile a pipeline to Kubeflow Pipelines v2 or Argo Workflows YAML."""
    from ..compilers import compile_text, load_pipeline

    pipe = load_pipeline(pipeline)
    params = literal_params(param)
    options = compile_options(env, secret, dbpath, schedule, kind, service_account)
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
        report = run_check(
            pipe, target=target, image=image, params=params, secret_values=values, **options
        )
        sys.stdout.write(report.summary() + "\n")
        if not report.ok:
            raise typer.Exit(1)
