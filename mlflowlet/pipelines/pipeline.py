"""``@pipeline``: trace step calls into a :class:`~mlflowlet.pipelines.graph.PipelineGraph`.

The pipeline function is called once, on first use, with :class:`PipelineParam` placeholders;
each step call inside it adds a node and returns a :class:`NodeHandle` whose ``outputs`` and
``results`` are references. Passing a reference to another step adds a labelled edge. Tracing is
lazy (on ``run``, ``describe``, ``dag``...), so defining a pipeline costs nothing and networkx
loads only then; mistakes raise :class:`~mlflowlet.errors.PipelineError` naming the call site.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from .._coerce import EMPTY, recorded
from ..errors import CycleError, ParameterError, PipelineError, StepDefinitionError
from ._spec import _fail, type_name, where
from ._trace import NodeHandle, Tracer, _tracer, current_tracer
from ._urlinputs import is_url_param, url_value
from .refs import Collected, OutputRef, PipelineParam
from .step import Step, step

if TYPE_CHECKING:
    from ..db.base import RunDB

__all__ = ["NodeHandle", "Pipeline", "current_tracer", "pipeline"]

RUN_OPTIONS = (
    "params",
    "resume",
    "cache",
    "max_parallel",
    "project",
    "artifact_path",
    "db",
    "wait",
    "labels",
)


class Pipeline:
    """A decorated pipeline function; traced once, on first use.

    Attributes:
        fn: the raw pipeline function.
        name: the pipeline name.
        params: the typed parameter placeholders (from the function's signature).
        on_exit: the exit-handler step, or None.
        image: the default image for compiled runs.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        description: str = "",
        on_exit: Any = None,
        image: str = "",
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__.replace("_", "-")
        self.description = description or inspect.getdoc(fn) or ""
        self.image = image
        self.handler = f"{fn.__module__}:{fn.__qualname__}"
        self.params = _pipeline_params(fn)
        self.on_exit = _exit_step(fn, on_exit) if on_exit is not None else None
        self._dag: Any = None
        self._lock = threading.Lock()
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Pipeline {self.name!r} {self.handler}>"

    def param(self, name: str) -> PipelineParam | None:
        """Return the parameter placeholder called ``name``, or None."""
        for p in self.params:
            if p.name == name:
                return p
        return None

    @property
    def dag(self) -> Any:
        """The traced :class:`~mlflowlet.pipelines.graph.PipelineGraph` (traced on first use)."""
        if self._dag is None:
            with self._lock:
                if self._dag is None:
                    self._dag = self._trace()
        return self._dag

    def _trace(self) -> Any:
        from .graph import Node, PipelineGraph

        if current_tracer() is not None:
            raise PipelineError(
                f"pipeline {self.name!r} is called inside another pipeline; call its steps instead"
            )
        tracer = Tracer(self)
        token = _tracer.set(tracer)
        try:
            returned = self.fn(**{p.name: p for p in self.params})
        finally:
            _tracer.reset(token)
            tracer.closed = True
        from ._outputs import pipeline_outputs

        outputs = pipeline_outputs(
            returned,
            f"@pipeline {self.fn.__qualname__} ({where(self.fn)})",
            {n.name: n for n in tracer.nodes},
        )
        exit_node = exit_pipe = None
        exit_step, exit_args, site = tracer.exit or (self.on_exit, {}, where(self.fn))
        if isinstance(exit_step, Pipeline):  # an exit sub-pipeline (see _exitpipe)
            from ._exitpipe import trace_exit_pipeline

            exit_pipe = trace_exit_pipeline(exit_step, exit_args, site, tracer.nodes)
        elif exit_step is not None:
            exit_node = Node(
                tracer.unique(exit_step.spec.name),
                exit_step,
                exit_args,
                exit_handler=True,
                call_site=site,
                index=len(tracer.nodes),
            )
        try:
            graph = PipelineGraph(
                self.name,
                self.params,
                tracer.nodes,
                exit_node,
                self.description,
                self.handler,
                self.image,
                outputs,
            )
            graph.exit_pipeline = exit_pipe
            return graph
        except CycleError as exc:  # name the pipeline function and where it is defined
            raise CycleError(
                exc.cycle, f"@pipeline {self.fn.__qualname__} ({where(self.fn)})"
            ) from None

    def validate(self) -> Pipeline:
        """Trace now (if not yet) so definition errors raise here; returns self."""
        self.dag  # noqa: B018 - tracing is the validation
        return self

    @property
    def graph(self) -> Any:
        """A copy of the pipeline's ``networkx.DiGraph``."""
        return self.dag.to_networkx()

    def describe(self) -> dict[str, Any]:
        """Return steps, parameters and edges as plain dicts (see ``mlflowlet.pipelines.graph``)."""
        return self.dag.describe()

    def to_mermaid(self) -> str:
        """Return a Mermaid flowchart of the pipeline."""
        return self.dag.to_mermaid()

    def to_dot(self) -> str:
        """Return a Graphviz dot picture of the pipeline."""
        return self.dag.to_dot()

    def resolve_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """Return every parameter's value: ``given`` coerced by type hints, else the defaults.

        Raises:
            ParameterError: an unknown parameter, a value that does not coerce, or a parameter
                with no default and no value.
        """
        known = [p.name for p in self.params]
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ParameterError(
                f"pipeline {self.name!r} has no parameter(s) {unknown}; its parameters: {known}"
            )
        out: dict[str, Any] = {}
        for p in self.params:
            if is_url_param(p):  # a URL input (see ._urlinputs): checked before it is recorded
                if p.name not in given and p.required:
                    raise ParameterError(
                        f"pipeline {self.name!r} ({where(self.fn)}) needs input {p.name!r} (a "
                        f"URL); pass run({p.name}='s3://...') or -i {p.name}=URL"
                    )
                out[p.name] = url_value(given.get(p.name, p.default), p.name)
            elif p.name in given:  # checked by the hint, passed on (and recorded) as JSON
                default = EMPTY if p.required else p.default
                out[p.name] = recorded(given[p.name], p.hint, p.name, default)[1]
            elif p.required:
                raise ParameterError(
                    f"pipeline {self.name!r} ({where(self.fn)}) needs a value for parameter "
                    f"{p.name!r} (it has no default); pass run({p.name}=...) or -p {p.name}=..."
                )
            else:
                out[p.name] = p.default
        return out

    def run(
        self,
        params: dict[str, Any] | None = None,
        *,
        resume: str | None = None,
        cache: bool | None = None,
        max_parallel: int | None = None,
        project: str = "",
        artifact_path: str = "",
        db: RunDB | None = None,
        wait: bool = True,
        labels: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run the pipeline locally, in this process.

        Args:
            params: pipeline parameter values (also accepted as keywords).
            resume: the uid of an earlier run of this pipeline: rerun only what failed or never
                ran, reusing the completed steps' outputs (the parameters must be the same).
            cache: reuse earlier runs of steps with the same code, params and input hashes
                (a step's own ``cache=`` wins).
            max_parallel: steps running at once (default: the CPU count); 1 runs every step in
                the calling thread.
            project: the project (default from settings).
            artifact_path: where the steps' artifacts go (default: under the run DB).
            db: the run DB (default: ``get_run_db()``).
            wait: False returns at once; ``.wait()`` on the returned run blocks.
            labels: labels added to the pipeline run.
            **kwargs: pipeline parameter values.

        Returns:
            A :class:`~mlflowlet.pipelines.run.PipelineRun` (``uid``, ``state``, ``steps``,
            ``lineage()``, ``show()``, ``wait()``).

        Raises:
            ParameterError: unknown, uncoercible or missing parameters.
            PipelineError: a badly defined pipeline, or ``resume`` with different parameters.
        """
        from .executor import LocalExecutor

        if current_tracer() is not None:
            raise PipelineError(
                f"pipeline {self.name!r} is run inside another pipeline; call its steps instead"
            )
        values = self.resolve_params({**(params or {}), **kwargs})
        executor = LocalExecutor(
            self,
            self.dag,
            values,
            resume=resume,
            cache=cache,
            max_parallel=max_parallel,
            project=project,
            artifact_path=artifact_path,
            db=db,
            labels=labels,
        )
        return executor.start(wait=wait)

    def submit(
        self,
        target: str = "kfp",
        host: str = "",
        arguments: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Compile and submit the pipeline to Kubeflow Pipelines or an Argo Server.

        See :func:`mlflowlet.compilers.submit.submit` (``experiment``, ``token``, ``namespace``,
        ``image`` and compile options such as ``schedule``).

        Returns:
            A :class:`~mlflowlet.compilers.submit.Submission` (``status()``, ``wait()``, ``url``).
        """
        from .._seams import seam  # the compilers sit above the pipelines

        return seam("submit")(self, target=target, host=host, arguments=arguments, **options)

    def map(
        self, items: Any, item_param: str | None = None, parallel: int | None = None, **kwargs: Any
    ) -> Any:
        """Map this pipeline, as a sub-pipeline, over ``items`` inside another ``@pipeline``.

        Each item runs the whole body (every step this pipeline's function calls), and a step
        waits only for the earlier steps of its own item, not for every item (KFP: a
        ``dsl.ParallelFor`` holding several tasks). A ``step.map`` or ``sub.map`` in the body
        is a nested map. Example::

            @pipeline
            def body(a: str, b: str):
                print_op(text=concat(a=a, b=b).output)

            @pipeline
            def main():
                body.map(items=[{"a": "1", "b": "2"}, {"a": "10", "b": "20"}],
                         a=item.a, b=item.b, parallel=2)

        Args:
            items: a result reference, a pipeline parameter, or a literal list.
            item_param: this pipeline's parameter that gets each element (or pass ``x=item``).
            parallel: items run at once (KFP ``ParallelFor(parallelism=)``, Argo
                ``parallelism``; default: the pipeline's ``max_parallel``).
            **kwargs: this pipeline's other parameters, shared by every item;
                ``x=item["key"]`` (or ``item.key``) gives ``x`` that sub-field of each element.

        Returns:
            A ``LoopHandle``: ``.after(node)`` starts the items after ``node`` (KFP's
            ``task.after`` on the loop's first tasks).

        Raises:
            PipelineError: outside a ``@pipeline`` function, or a bad argument.
        """
        from ._subpipe import map_subpipeline

        return map_subpipeline(self, items, item_param, parallel, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the pipeline, like :meth:`run` (parameters as keywords)."""
        if args:
            raise PipelineError(f"pass the parameters of pipeline {self.name!r} by name")
        return self.run(**kwargs)


def _pipeline_params(fn: Callable[..., Any]) -> tuple[PipelineParam, ...]:
    from .._binding import handler_signature

    out = []
    for p in handler_signature(fn).params:
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise StepDefinitionError(
                f"@pipeline on {fn.__qualname__} ({where(fn)}): parameter "
                f"{p.name!r} must be passable by name"
            )
        if p.name in RUN_OPTIONS:
            raise StepDefinitionError(
                f"@pipeline on {fn.__qualname__} ({where(fn)}): parameter {p.name!r} clashes "
                f"with the run option of that name; rename it (options: {list(RUN_OPTIONS)})"
            )
        default = None if p.required else p.default
        if p.hint is float and type(default) is int:  # lr: float = 1 is 1.0, as a given lr=1 is
            default = float(default)
        out.append(PipelineParam(p.name, p.hint, type_name(p.hint), default, p.required))
    if any(
        p.kind is inspect.Parameter.VAR_POSITIONAL
        for p in inspect.signature(fn).parameters.values()
    ):
        raise StepDefinitionError(
            f"@pipeline on {fn.__qualname__} ({where(fn)}): *args cannot "
            "be pipeline parameters; name each one"
        )
    return tuple(out)


def _exit_step(fn: Callable[..., Any], on_exit: Any, given: tuple[str, ...] = ()) -> Step:
    from .._final_status import final_status_params

    if isinstance(on_exit, Pipeline):  # an exit sub-pipeline (see _exitpipe)
        from ._exitpipe import check_exit_pipeline

        check_exit_pipeline(fn, on_exit, given)
        return on_exit  # type: ignore[return-value]
    exit_step = on_exit if isinstance(on_exit, Step) else step(on_exit)
    spec = exit_step.spec
    statuses = final_status_params(spec)  # the whole final status (KFP's, if it has one)
    if spec.param("state") is None and not spec.var_keyword and not statuses:
        raise _fail(
            exit_step.fn,
            "an on_exit step receives the pipeline's final state: give it a parameter named "
            "'state' (or one annotated PipelineTaskFinalStatus)",
        )
    # the final state; the failed steps' names and the final status (if it has them)
    own = ("state", "failures", *statuses)
    required = [p.name for p in spec.params if p.required and p.name not in (*own, *given)]
    if required:
        raise _fail(
            exit_step.fn,
            f"on_exit step parameters {required} need defaults or arguments (it is "
            f"called with state and the arguments of on_exit(...)) - pipeline {fn.__qualname__}",
        )
    return exit_step


def on_exit(exit_step: Any, **arguments: Any) -> None:
    """Run ``exit_step`` after the pipeline ends, with ``arguments`` and ``state``.

    Called inside a ``@pipeline`` function (as KFP's ``dsl.ExitHandler(exit_op(x=...))``
    or Argo's ``onExit`` with arguments). The step runs whatever the other steps ended in,
    with ``state`` set to the pipeline's final state (``completed`` or ``error``) and, when it
    has a parameter ``failures``, the sorted names of the steps that failed (Argo
    ``{{workflow.failures}}``; refused on KFP, whose final status names no failed task); a
    parameter annotated :class:`~mlflowlet.PipelineTaskFinalStatus` gets the whole final status
    (KFP's ``dsl.PipelineTaskFinalStatus``; see :mod:`mlflowlet._final_status`).

    Args:
        exit_step: a ``@step`` (or a function) with a parameter ``state``, or a ``@pipeline``
            (an exit sub-pipeline of several steps, see ``mlflowlet.pipelines._exitpipe``).
        **arguments: its other arguments: pipeline parameters or JSON literals (never a step's
            output: a failed or skipped step has none).

    Raises:
        PipelineError: outside a ``@pipeline`` function, given twice (or with
            ``@pipeline(on_exit=...)``), an output passed, or a ``state`` argument.
        StepDefinitionError: ``exit_step`` has no ``state`` parameter, or a required
            parameter is left without an argument.
    """
    from ._trace import _call_site

    tracer, site = current_tracer(), _call_site()
    if tracer is None or tracer.closed:
        raise PipelineError(f"{site}: on_exit(...) is called inside a @pipeline function only")
    if tracer.exit is not None or tracer.pipe.on_exit is not None:
        raise PipelineError(
            f"{site}: pipeline {tracer.pipe.name!r} already has an exit step; give one, either "
            "@pipeline(on_exit=...) or one on_exit(...) call"
        )
    if tracer.blocks:
        raise PipelineError(
            f"{site}: on_exit(...) inside `with condition(...)`: the exit step runs whatever "
            "happened; call on_exit outside the block (and test state in the step)"
        )
    from .._final_status import final_status_params

    st = _exit_step(tracer.pipe.fn, exit_step, tuple(arguments))
    if isinstance(st, Pipeline):
        from ._exitpipe import bind_exit_pipeline

        tracer.exit = (st, bind_exit_pipeline(st, arguments, site), site)
        return
    for own in ("state", "failures", *final_status_params(st.spec)):
        if own in arguments:
            raise PipelineError(f"{site}: on_exit(...) sets {own!r} itself; do not pass it")
    bound = tracer._bind(st, (), arguments, site)
    refs = sorted(k for k, v in bound.items() if isinstance(v, (OutputRef, Collected)))
    if refs:
        raise PipelineError(
            f"{site}: on_exit({st.spec.name}, ...) passes step outputs to {refs}; an exit step "
            "runs also after failed or skipped steps, which have none: pass pipeline "
            "parameters or literals"
        )
    tracer.exit = (st, bound, site)


@overload
def pipeline(fn: Callable[..., Any]) -> Pipeline: ...


@overload
def pipeline(
    fn: None = None,
    *,
    name: str | None = None,
    description: str = "",
    on_exit: Any = None,
    image: str = "",
) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str = "",
    on_exit: Any = None,
    image: str = "",
) -> Any:
    """Turn a function calling steps into a pipeline (use as ``@pipeline`` or ``@pipeline(...)``).

    The function's parameters (names, hints, defaults) are the pipeline parameters; inside it
    they are typed placeholders. It is traced on first use (``run``, ``describe``...).

    Args:
        fn: the function (when used without parentheses).
        name: the pipeline name (default: the function's, ``_`` as ``-``).
        description: a description (default: the docstring).
        on_exit: a step (or function) run after the pipeline ends, with ``state`` set to the
            pipeline's final state (``completed`` or ``error``); or a ``@pipeline`` whose steps
            run then (an exit sub-pipeline, see ``mlflowlet.pipelines._exitpipe``).
        image: the default container image for compiled runs.

    Returns:
        A :class:`Pipeline` (or a decorator making one).

    Raises:
        StepDefinitionError: a parameter that clashes with a run option, or a bad ``on_exit``.
    """

    def decorate(func: Callable[..., Any]) -> Pipeline:
        if not callable(func):
            raise StepDefinitionError(f"@pipeline takes a function, got {type(func).__name__}")
        return Pipeline(func, name=name, description=description, on_exit=on_exit, image=image)

    return decorate(fn) if fn is not None else decorate
