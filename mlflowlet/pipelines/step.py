"""``@step``: capture a handler once as an immutable :class:`StepSpec`.

A step is a plain function whose parameters (names, type hints, defaults) become the step's
parameters; the one named ``context`` (or annotated ``Context``) receives the run context. Inside a
``@pipeline`` function, calling a step adds a node and returns a handle; outside, it runs the
function as one tracked run and returns its ``RunObject``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from types import MappingProxyType
from typing import Any, overload

from ..errors import StepDefinitionError
from ._spec import (
    RESOURCE_KEYS,
    HyperSpec,
    ParamSpec,
    StepSpec,
    _check_options,
    _fail,
    build_spec,
    type_name,
    where,
)

__all__ = [
    "RESOURCE_KEYS",
    "HyperSpec",
    "ParamSpec",
    "Step",
    "StepSpec",
    "build_spec",
    "step",
    "type_name",
    "where",
]


class Step:
    """A decorated step. Call it inside a ``@pipeline`` to add a node, or directly to run it.

    Attributes:
        fn: the raw function.
        spec: the immutable :class:`StepSpec`.
        hyper: hyper-parameters bound with :meth:`with_hyper_params`, or None.
    """

    def __init__(self, fn: Callable[..., Any], spec: StepSpec, hyper: HyperSpec | None = None):
        self.fn = fn
        self.spec = spec
        self.hyper = hyper
        functools.update_wrapper(self, fn)
        self._handler: Callable[..., Any] | None = None

    @property
    def name(self) -> str:
        """The step name."""
        return self.spec.name

    def __repr__(self) -> str:
        return f"<Step {self.spec.name!r} {self.spec.handler}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Add a node (inside ``@pipeline``) or run the step as one tracked run (outside).

        Outside a pipeline, ``DataItem`` (or path) values bind artifact inputs and the extra
        keywords ``project``, ``db``, ``artifact_path`` and ``raise_on_error`` are accepted.
        """
        from ._trace import current_tracer

        tracer = current_tracer()
        if tracer is not None:
            return tracer.add(self, args, kwargs)
        from ._stepexec import run_direct

        return run_direct(self, args, kwargs)

    def handler(self) -> Callable[..., Any]:
        """Return the function the runtime calls (stores returned outputs, checks declared ones)."""
        if self._handler is None:
            from ._values import make_handler

            self._handler = make_handler(self.fn, self.spec)
        return self._handler

    def with_options(self, **options: Any) -> Step:
        """Return a copy with options replaced.

        Options: ``name``, ``image``, ``image_has_mlflowlet``, ``resources``, ``retries``,
        ``retry_delay``, ``timeout``, ``cache``, ``labels``, ``outputs`` (as for :func:`step`).
        """
        unknown = sorted(set(options) - set(STEP_OPTIONS))
        if unknown:
            raise _fail(
                self.fn,
                f"with_options() got unknown option(s) {unknown}; options: {list(STEP_OPTIONS)}",
            )
        opts = _check_options(self.fn, options)
        copy = Step(self.fn, replace(self.spec, **opts), self.hyper)
        copy._handler = self._handler if "outputs" not in opts else None
        return copy

    def with_hyper_params(
        self,
        hyper_params: dict[str, list[Any]],
        selector: str = "",
        strategy: str = "grid",
        max_iterations: int | None = None,
        max_errors: int | None = None,
        parallel: int | None = None,
        seed: int | None = None,
    ) -> Step:
        """Return a copy that runs once per combination and passes the best iteration on.

        Args:
            hyper_params: parameter name to a list of values.
            selector: ``'max.accuracy'`` / ``'min.loss'``: picks the iteration whose outputs
                and results flow downstream (required when downstream steps use them).
            strategy: ``grid``, ``list`` or ``random``.
            max_iterations: cap on iterations (the count for ``random``).
            max_errors: stop after this many failed iterations.
            parallel: iterations run at once.
            seed: seed of the ``random`` strategy.

        Raises:
            HyperParamError: bad hyper-parameters or selector.
            StepDefinitionError: a hyper-parameter names no parameter of the step.
        """
        from ..model import RunTemplate

        RunTemplate().with_hyper_params(
            hyper_params,
            selector or None,
            strategy,
            max_iterations,
            max_errors,
            None,
            parallel,
            seed,
        )  # validates
        from .refs import Collected, OutputRef, PipelineParam

        for key, values in hyper_params.items():
            if any(isinstance(v, (PipelineParam, OutputRef, Collected)) for v in values):
                raise _fail(
                    self.fn,
                    f"hyper-parameter {key!r} holds a pipeline parameter or step output; "
                    "hyper-parameter values must be literals known at trace time "
                    f"(e.g. {{{key!r}: [0.01, 0.1]}})",
                )
        names = {p.name for p in self.spec.params}
        unknown = sorted(k for k in hyper_params if k not in names)
        if unknown and not self.spec.var_keyword:
            raise _fail(
                self.fn,
                f"hyper-parameters {unknown} name no parameter; parameters: {sorted(names)}",
            )
        hyper = HyperSpec(
            MappingProxyType({k: tuple(v) for k, v in hyper_params.items()}),
            selector,
            strategy,
            max_iterations,
            max_errors,
            parallel,
            seed,
        )
        copy = Step(self.fn, self.spec, hyper)
        copy._handler = self._handler
        return copy

    def map(
        self, items: Any, item_param: str | None = None, parallel: int | None = None, **kwargs: Any
    ) -> Any:
        """Fan out: run the step once per element of ``items`` (a list known at run time).

        Args:
            items: a result reference, a pipeline parameter, or a literal list.
            item_param: the parameter that receives one element per run (or pass ``x=item``).
            parallel: runs at once (default: the pipeline's ``max_parallel``).
            **kwargs: the other arguments, shared by every run; ``x=item["key"]`` (or
                ``item.key``) gives ``x`` that sub-field of each element (a dict).

        Returns:
            The node handle; pass ``collect(node.results[...])`` downstream.

        Raises:
            PipelineError: outside a ``@pipeline`` function, or ``item_param`` is unknown.
        """
        from ..errors import PipelineError
        from ._trace import current_tracer

        tracer = current_tracer()
        if tracer is None:
            raise PipelineError(
                f"{self.spec.name}.map() fans out a step inside a @pipeline function only; call "
                f"it there (outside a pipeline, call {self.spec.name}(...) once per item)"
            )
        return tracer.add(
            self, (), kwargs, items=items, item_param=item_param or "", parallel=parallel
        )


STEP_OPTIONS = (
    "name",
    "outputs",
    "image",
    "image_has_mlflowlet",
    "resources",
    "retries",
    "retry_delay",
    "timeout",
    "cache",
    "labels",
)


@overload
def step(fn: Callable[..., Any]) -> Step: ...


@overload
def step(
    fn: None = None,
    *,
    name: str | None = None,
    outputs: list[str] | dict[str, str] | None = None,
    image: str | None = None,
    image_has_mlflowlet: bool | None = None,
    resources: dict[str, Any] | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    timeout: float | None = None,
    cache: bool | timedelta | None = None,
    labels: dict[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    outputs: list[str] | dict[str, str] | None = None,
    image: str | None = None,
    image_has_mlflowlet: bool | None = None,
    resources: dict[str, Any] | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    timeout: float | None = None,
    cache: bool | timedelta | None = None,
    labels: dict[str, str] | None = None,
) -> Any:
    """Turn a function into a pipeline step (use as ``@step`` or ``@step(...)``).

    Args:
        fn: the function (when used without parentheses).
        name: the step name (default: the function's name).
        outputs: declared artifact outputs; the function logs them (``context.log_artifact``)
            or returns the value (one output, or a tuple for several): bytes/str/path become a
            file, a DataFrame parquet, a dict/list JSON, anything else a cloudpickle file. A
            dict declares what each output is (``{"model": "model", "metrics": "metrics",
            "report": "html"}``; kinds: ``artifact``, ``dataset``, ``model``, ``metrics``,
            ``html``, ``markdown``), compiled to the KFP artifact type its UI shows; a return
            annotation (``-> Model``, ``-> tuple[Dataset, HTML]``) declares them too.
        image: container image for compiled runs.
        image_has_mlflowlet: ``image`` is a bare base image name that does have mlflowlet:
            silences the compile-time warning about it.
        resources: ``{'cpu': '1', 'memory': '2Gi', 'gpu': 1}``.
        retries: attempts after the first failure.
        retry_delay: seconds before the first retry, doubling each time.
        timeout: seconds one attempt may take.
        cache: reuse a previous run with the same code, params and input hashes; a
            ``timedelta`` reuses only runs at most that old (Argo ``memoize.maxAge``).
        labels: labels set on the step's runs.

    Returns:
        A :class:`Step` (or a decorator making one).

    Raises:
        StepDefinitionError: a bad signature or option, naming the function, file and line.
    """
    options = {
        "name": name,
        "outputs": outputs,
        "image": image,
        "image_has_mlflowlet": image_has_mlflowlet,
        "resources": resources,
        "retries": retries,
        "retry_delay": retry_delay,
        "timeout": timeout,
        "cache": cache,
        "labels": labels,
    }

    def decorate(func: Callable[..., Any]) -> Step:
        if isinstance(func, Step):
            return func.with_options(**{k: v for k, v in options.items() if v is not None})
        return Step(func, build_spec(func, **options))

    if fn is not None:
        if not callable(fn):
            raise StepDefinitionError(
                f"@step takes a function or keyword options, got {type(fn).__name__}; "
                "use @step or @step(outputs=[...])"
            )
        return decorate(fn)
    return decorate
