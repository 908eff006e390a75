"""The ``mlflowlet`` command line (typer): ``mlflowlet`` and ``python -m mlflowlet``.

Layout (follow it when adding commands):

* Each area has a module in ``mlflowlet/_cli/`` (``run.py``, ``get.py``, ``logs.py``,
  ``delete.py``, ``info.py``; later ``compile.py``, ``submit.py``, ``serve.py``, ...) that defines
  ``register(app: typer.Typer) -> None`` adding its commands (or a group, with
  ``app.add_typer``), and may set ``ORDER = <int>`` (default 100) for its place in ``--help``.
  Modules are found automatically: drop the file in, nothing to edit here. Names starting with
  ``_`` are helpers (``_common.py``: ``KEY=VALUE`` parsing, output formats, opening the run DB).
* A command module imports only typer and the standard library at module level. Everything else
  (model, runtimes, db: pydantic, networkx, ...) is imported inside the command function, so
  ``mlflowlet --help`` stays fast (``benchmarks/bench_cli.py`` measures it).
* Errors: raise (or let through) an ``MlflowletError``: :func:`main` prints ``error: <message>``
  on stderr and exits 1 (the traceback only with ``--verbose``). Bad usage raises
  ``typer.BadParameter`` (``_common.usage_error``) and exits 2. A command that ends a failed run
  raises ``typer.Exit(1)`` after printing its own one-line message.
* ``mlflowlet version`` (exactly) is answered before typer loads.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback
from typing import Any

_HELP = (
    "Describe, run and track machine-learning work: one handler, any runtime, every run recorded."
)


def build_app() -> Any:
    """Return the typer app with every command module of ``mlflowlet._cli`` registered."""
    try:
        import typer
    except ImportError:
        from .errors import MissingDependencyError

        raise MissingDependencyError("typer", "cli") from None

    from . import _cli
    from ._cli._common import root_callback

    app = typer.Typer(
        name="mlflowlet",
        help=_HELP,
        epilog="Example: mlflowlet run --name train -p p1=5 training.py; mlflowlet get runs",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    app.callback()(root_callback)

    found = []
    for info in pkgutil.iter_modules(_cli.__path__):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{_cli.__name__}.{info.name}")
            found.append((getattr(module, "ORDER", 100), info.name, module))
    for _, _, module in sorted(found, key=lambda item: item[:2]):
        module.register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); exits with its code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["version"], ["--version"]):  # the fast path: no typer, no core modules
        from ._version import __version__

        sys.stdout.write(f"mlflowlet {__version__}\n")
        return
    from ._cli._common import STATE
    from .errors import MlflowletError

    STATE["verbose"] = False
    try:
        build_app()(args=args, prog_name="mlflowlet")
    except MlflowletError as exc:
        _fail(str(exc), STATE["verbose"])
    except Exception as exc:  # a bug or an OS error: still one line unless --verbose
        _fail(
            f"{type(exc).__name__}: {exc} (run with --verbose for the traceback)", STATE["verbose"]
        )


def _fail(message: str, verbose: bool) -> None:
    if verbose:
        traceback.print_exc()
    from ._text import printable

    line = printable(" ".join(message.strip().split("\n")[:1]) or "unknown error")
    sys.stderr.write(f"error: {line}\n")
    sys.exit(1)


if __name__ == "__main__":
    main()
