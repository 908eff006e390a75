"""Tracing internals: the active tracer, node handles and the references they hand out.

:class:`Tracer` collects nodes while a ``@pipeline`` function runs with placeholders (see
:mod:`mlflowlet.pipelines.pipeline`); calling a step asks :func:`current_tracer` whether it is
being traced.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from contextvars import ContextVar
from types import FrameType
from typing import Any

from .._coerce import EMPTY, recorded
from ..errors import ParameterError, PipelineError
from ._spec import spreads_return
from .refs import Collected, Condition, ConditionBlock, Operand, OutputRef, PipelineParam

STATUS_ON = (None, "success", "failure", "done")
_tracer: ContextVar[Tracer | None] = ContextVar("mlflowlet_pipeline_tracer", default=None)
_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_CONTEXTLIB = contextlib.__file__


def current_tracer() -> Tracer | None:
    """Return the tracer of the ``@pipeline`` function being traced in this context, if any."""
    return _tracer.get()


def _call_site() -> str:
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and (
        frame.f_code.co_filename.startswith(_HERE) or frame.f_code.co_filename == _CONTEXTLIB
    ):  # `with condition(...)` enters through contextlib
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"


class _Refs:
    """``node.outputs`` / ``node.results``: item access returns references."""

    def __init__(self, handle: NodeHandle, kind: str) -> None:
        self._handle, self._kind = handle, kind

    def __getitem__(self, key: str) -> OutputRef:
        node = self._handle._node
        if not isinstance(key, str):
            raise PipelineError(f"{node.name}: output keys are strings, got {key!r}")
        if self._kind == "artifact" and key not in node.spec.outputs:
            declared = list(node.spec.outputs)
            raise PipelineError(
                f"{_call_site()}: step {node.name!r} has no declared output {key!r}; declared "
                f"outputs: {declared or 'none'} (add it with @step(outputs=[{key!r}, ...]))"
            )
        returns = str(getattr(node.spec, "returns", "") or "")
        if (self._kind, key) == ("result", "return") and spreads_return(returns, node.spec.outputs):
            raise PipelineError(
                f"{_call_site()}: step {node.name!r} returns a dict (-> {returns}), logged one "
                f"result per key: no result 'return'; read a key ({node.name}.results['<key>'])"
            )
        if node.hyper is not None and not node.hyper.selector:
            raise PipelineError(
                f"{_call_site()}: step {node.name!r} runs hyper-parameters without a selector, so "
                "no single iteration's outputs can flow on; pass selector='max.<result>'"
            )
        return OutputRef(node.name, key, self._kind, mapped=node.map is not None)

    def every_result(self) -> OutputRef:
        """Return the reference ``collect(node.results)`` reads (every result: key ``''``).

        Raises:
            PipelineError: ``node.outputs`` (collect one artifact at a time).
        """
        node = self._handle._node
        if self._kind == "artifact":
            raise PipelineError(
                f"collect({node.name}.outputs): collect one artifact at a time, "
                f"collect({node.name}.outputs['key'])"
            )
        return OutputRef(node.name, "", "result", mapped=node.map is not None)

    def __repr__(self) -> str:
        return f"<{self._handle._node.name}.{'outputs' if self._kind == 'artifact' else 'results'}>"


class NodeHandle:
    """What a step call returns inside a pipeline.

    Attributes:
        name: the node's unique name.
        outputs: ``outputs['key']`` references a declared artifact output.
        results: ``results['key']`` references a scalar result (``'return'`` for the return value).
    """

    def __init__(self, tracer: Tracer, node: Any) -> None:
        self._tracer, self._node = tracer, node
        self.name: str = node.name
        self.outputs = _Refs(self, "artifact")
        self.results = _Refs(self, "result")

    @property
    def output(self) -> OutputRef:
        """The step's return value (result ``'return'``)."""
        return self.results["return"]

    def after(self, *others: NodeHandle, on: str | None = None) -> NodeHandle:
        """Run this node only after ``others`` finished (an ordering edge); returns self.

        Args:
            *others: nodes of the same pipeline.
            on: run on their status: ``'success'`` (each completed; Argo ``x.Succeeded``),
                ``'failure'`` (each failed; Argo ``x.Failed``) or ``'done'`` (each finished,
                whatever its state). Default: after them, skipped when one failed (a skipped one
                does not hold it back).
        """
        if self._tracer.closed:
            raise PipelineError(f"{self.name}.after() is used while the pipeline is traced")
        if on not in STATUS_ON:
            raise PipelineError(
                f"{_call_site()}: {self.name}.after(..., on={on!r}): on is one of "
                f"{list(STATUS_ON[1:])} (or None: after them, skipped when one failed)"
            )
        names = list(self._node.after)
        for other in others:
            if not isinstance(other, NodeHandle) or other._tracer is not self._tracer:
                raise PipelineError(
                    f"{_call_site()}: {self.name}.after() takes nodes of the same pipeline, "
                    f"got {other!r}"
                )
            if on in ("failure", "done"):
                self._check_no_data_from(other.name, on)
            was = self._node.after_on.get(other.name) if other.name in names else on
            if was != on:
                raise PipelineError(
                    f"{_call_site()}: {self.name} already runs after {other.name} "
                    f"(on={was!r}); it cannot also run on={on!r}: give one status per step"
                )
            if other.name not in names:
                names.append(other.name)
            if on is not None:
                self._node.after_on[other.name] = on
        self._node.after = tuple(names)
        return self

    def _check_no_data_from(self, other: str, on: str) -> None:
        """Refuse reading outputs of a step this node runs after on its failure (none exist)."""
        node = self._node
        reads = [p for p, v in node.references() if v.node == other]
        if node.map is not None and isinstance(node.map.items, OutputRef):
            reads += [node.map.item_param] if node.map.items.node == other else []
        if node.condition is not None and any(
            isinstance(o, OutputRef) and o.node == other for o in node.condition.operands()
        ):
            reads.append("its condition")
        if reads:
            raise PipelineError(
                f"{_call_site()}: {self.name}.after({other}, on={on!r}) but {self.name} reads "
                f"outputs of {other} ({', '.join(reads)}), which a failed step does not have; "
                "run it on='success', or pass it something else"
            )

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<NodeHandle {self.name!r}>"


class Tracer:
    """Collects the nodes while a pipeline function runs with placeholders."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.nodes: list[Any] = []
        self.names: set[str] = set()
        self.counts: dict[str, int] = {}
        self.blocks: list[ConditionBlock] = []  # the open `with condition(...)` blocks
        self.block_count = 0
        self.closed = False
        self.exit: tuple[Any, dict[str, Any], str] | None = None  # on_exit(step, **arguments)
        self.loops: list[Any] = []  # the open sub-pipeline maps (``_subpipe``), outermost first
        self.loop_count = 0

    def open_block(self, expr: Condition, site: str) -> ConditionBlock:
        """Open a ``with condition(expr)`` block (its operands must belong to this pipeline)."""
        for operand in expr.operands():
            self._check_operand(operand, site, "condition")
        block = ConditionBlock(self.block_count, expr, site, self.loops[-1] if self.loops else None)
        self.block_count += 1
        self.blocks.append(block)
        return block

    def close_block(self) -> None:
        """Close the innermost open block."""
        self.blocks.pop()

    def unique(self, base: str) -> str:
        """Return ``base``, or ``base-2``, ``base-3``... when taken."""
        name, i = base, self.counts.get(base, 1)
        while name in self.names:
            i += 1
            name = f"{base}-{i}"
        self.counts[base] = i
        self.names.add(name)
        return name

    def add(
        self,
        st: Any,
        args: tuple,
        kwargs: dict[str, Any],
        items: Any = None,
        item_param: str | None = None,
        parallel: int | None = None,
    ) -> NodeHandle:
        """Add a node for a call of ``st`` and return its handle."""
        from ._items import MapItem, check_every_items, check_item_blocks, split_item_args
        from .graph import MapSpec, Node

        site = _call_site()
        spec = st.spec
        arguments = self._bind(st, args, kwargs, site)
        mapping, fields, loop = None, dict[str, str](), self.loops[-1] if self.loops else None
        if item_param is not None:
            if loop is not None:  # a step map nested in a sub-pipeline map
                from ._subpipe import check_item_loops

                check_item_loops(arguments, None, site, spec.name)
            item_param, fields = split_item_args(arguments, item_param, site, spec.name)
            check_every_items(items, item_param, site, spec.name)
            mapping = self._map(st, item_param, items, arguments, parallel, site)
            loop = None if loop is None else self.new_loop(spec.name, items, parallel, loop)
        elif loop is not None:  # a step of a mapped sub-pipeline: one run per item, no barrier
            from ._subpipe import body_item_args

            item_param, fields = body_item_args(arguments, loop, site, spec.name, st.hyper)
            mapping, items, parallel = True, loop.items, loop.parallel
        elif any(isinstance(v, MapItem) for v in arguments.values()):
            raise PipelineError(
                f"{site}: step {spec.name!r} gets `item`, which only a map has: call "
                f"{spec.name}.map(items=..., ...)"
            )
        missing = [
            p.name
            for p in spec.params
            if p.required
            and p.name not in arguments
            and p.name != item_param
            and p.name not in fields
            and not (st.hyper and p.name in st.hyper.hyper_params)
        ]
        if missing:
            raise PipelineError(
                f"{site}: step {spec.name!r} is missing required parameter(s) {missing}; "
                f"pass them in the call, e.g. {spec.name}({missing[0]}=...)"
            )
        check_item_blocks(self.blocks, item_param, site, spec.name, loop)
        cond = None
        for block in self.blocks:
            cond = block.condition if cond is None else Condition("and", cond, block.condition)
        node = Node(
            self.unique(spec.name),
            st,
            arguments,
            condition=cond,
            hyper=st.hyper,
            map=MapSpec(items, item_param or "", parallel, fields, loop) if mapping else None,
            call_site=site,
            index=len(self.nodes),
            blocks=tuple(self.blocks),
        )
        self.nodes.append(node)
        return NodeHandle(self, node)

    def new_loop(self, name: str, items: Any, parallel: int | None, parent: Any) -> Any:
        """Open no block; return a new :class:`~._items.Loop` nested in ``parent``."""
        from ._items import Loop

        self.loop_count += 1
        return Loop(f"{name}-loop-{self.loop_count}", items, parallel, parent)

    def in_open_loop(self, node: str) -> bool:
        """Whether ``node`` is a step of a sub-pipeline map being traced now."""
        found = next((n for n in self.nodes if n.name == node), None)
        return found is not None and found.map is not None and found.map.loop in self.loops

    def in_loop(self, node: str) -> bool:
        """Whether ``node`` is a step of a sub-pipeline map (or a map nested in one)."""
        found = next((n for n in self.nodes if n.name == node), None)
        return found is not None and found.map is not None and found.map.loop is not None

    def _bind(self, st: Any, args: tuple, kwargs: dict[str, Any], site: str) -> dict[str, Any]:
        spec = st.spec
        names = [p.name for p in spec.params]
        if len(args) > len(names):
            raise PipelineError(
                f"{site}: step {spec.name!r} takes {len(names)} argument(s), "
                f"got {len(args)} positional"
            )
        bound = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key in bound:
                raise PipelineError(f"{site}: step {spec.name!r} got parameter {key!r} twice")
            bound[key] = value
        out: dict[str, Any] = {}
        for key, value in bound.items():
            param = spec.param(key)
            if param is None and not spec.var_keyword:
                what = "a reference" if isinstance(value, (Operand, Collected)) else "a value"
                raise PipelineError(
                    f"{site}: {what} is passed to {key!r}, which step {spec.name!r} does not "
                    f"have; its parameters: {names}"
                )
            if st.hyper is not None and key in st.hyper.hyper_params:
                raise PipelineError(
                    f"{site}: {key!r} of step {spec.name!r} is both an argument "
                    "and a hyper-parameter; give it once"
                )
            out[key] = self._value(value, param, spec.name, key, site)
        return out

    def _value(self, value: Any, param: Any, step_name: str, key: str, site: str) -> Any:
        from ._items import MapItem

        if isinstance(value, MapItem):  # the map's element (checked by add)
            return value
        if isinstance(value, NodeHandle):
            raise PipelineError(
                f"{site}: {key}={value.name} passes a whole node; pass "
                f"{value.name}.outputs['<output>'] or {value.name}.results['<result>']"
            )
        if isinstance(value, Condition):
            raise PipelineError(f"{site}: {key} gets a condition; use `with condition(...)`")
        if isinstance(value, Collected) and value.every:
            raise PipelineError(
                f"{site}: {key}={value!r}: every result of each item is map items only "
                f"(step.map(items={value!r}, x=item.key)); pass one result to a parameter: "
                f"collect({value.node}.results['key'])"
            )
        if isinstance(value, (Operand, Collected)):
            self._check_operand(value, site, f"parameter {key!r} of step {step_name!r}")
            if param is not None and param.dataitem:
                _check_dataitem_ref(value, site, step_name, key)
            elif (
                isinstance(value, PipelineParam)
                and value.type == "DataItem"
                and param is not None
                and param.type not in ("", "str", "Any", "object")
            ):
                raise PipelineError(
                    f"{site}: parameter {key!r} of step {step_name!r} is typed {param.type} but "
                    f"gets URL input {value.name!r} (a DataItem); type it DataItem (or str for "
                    "the URL's text)"
                )
            return value
        if param is not None and param.dataitem:
            raise PipelineError(
                f"{site}: parameter {key!r} of step {step_name!r} is a DataItem (an artifact "
                f"input) but gets the literal {value!r:.60}; pass an upstream artifact "
                "(node.outputs['key']), or type the parameter str and open the URL in the step"
            )
        _check_nested(value, site, key)
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise PipelineError(
                f"{site}: {key}= of step {step_name!r} gets a {type(value).__name__}; step "
                "arguments are JSON values (pass data as an artifact output instead)"
            ) from None
        hint = param.hint if param is not None else EMPTY
        default = EMPTY if param is None or param.required else param.default
        try:  # passed on (and recorded) as JSON: what the step reads back, on any engine
            return recorded(value, hint, key, default)[1]
        except ParameterError as exc:
            raise PipelineError(f"{site}: step {step_name!r}: {exc}") from None

    def _check_operand(self, value: Any, site: str, where_: str) -> None:
        ref = value.ref if isinstance(value, Collected) else value
        if isinstance(ref, PipelineParam):
            if self.pipe.param(ref.name) is not ref:
                raise PipelineError(
                    f"{site}: {where_} uses parameter {ref.name!r} of another pipeline"
                )
            return
        if isinstance(ref, OutputRef):
            if ref.node not in self.names:
                raise PipelineError(f"{site}: {where_} uses step {ref.node!r} of another pipeline")
            if isinstance(value, Collected) and self.in_loop(ref.node):
                raise PipelineError(
                    f"{site}: {where_} collects {value!r} of a map inside a mapped sub-pipeline, "
                    "which is not supported yet; collect a map outside any sub-pipeline map"
                )
            if (
                ref.mapped
                and not isinstance(value, Collected)
                and where_ != "map items"
                and not self.in_open_loop(ref.node)  # an earlier step of the same item
            ):
                raise PipelineError(
                    f"{site}: {where_} gets {ref!r} of a mapped step; wrap it: collect({ref!r})"
                )

    def _map(
        self,
        st: Any,
        item_param: str,
        items: Any,
        arguments: dict[str, Any],
        parallel: int | None,
        site: str,
    ) -> bool:
        spec = st.spec
        if item_param and spec.param(item_param) is None and not spec.var_keyword:
            raise PipelineError(
                f"{site}: item_param={item_param!r} is not a parameter of step "
                f"{spec.name!r}; parameters: {[p.name for p in spec.params]}"
            )
        if item_param in arguments:
            raise PipelineError(
                f"{site}: {item_param!r} is the item parameter of the map; "
                "do not pass it as an argument too"
            )
        if st.hyper is not None:
            raise PipelineError(
                f"{site}: step {spec.name!r} cannot be mapped and use hyper-parameters at once"
            )
        self.check_items(items, parallel, site)
        return True

    def check_items(self, items: Any, parallel: int | None, site: str) -> None:
        """Refuse map ``items`` that are no list (or reference to one) and a bad ``parallel``."""
        if parallel is not None and (
            isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1
        ):
            raise PipelineError(f"{site}: parallel must be a positive integer, got {parallel!r}")
        if isinstance(items, Collected):
            if items.ref.kind != "result":
                raise PipelineError(
                    f"{site}: map items {items!r} are artifacts; a map fans out over results"
                )
            self._check_operand(items, site, "map items")
        elif isinstance(items, OutputRef):
            if items.kind != "result" or items.mapped:
                raise PipelineError(
                    f"{site}: map items must be a result list, a pipeline "
                    f"parameter or a literal list, got {items!r}"
                )
            self._check_operand(items, site, "map items")
        elif isinstance(items, PipelineParam):
            self._check_operand(items, site, "map items")
            base = items.type.split("[", 1)[0].strip().lower()
            if base not in ("list", "tuple", "sequence") and not (
                base in ("", "any") and isinstance(items.default, (list, tuple))
            ):
                raise PipelineError(
                    f"{site}: map items {items!r} is declared {items.type or 'without a type'}"
                    f"; a map needs a list: declare it list[...] (e.g. {items.name}: list[str])"
                )
        elif not isinstance(items, (list, tuple)):
            raise PipelineError(
                f"{site}: map items must be a list (or a reference to one), "
                f"got {type(items).__name__}"
            )
        else:
            _check_nested(items, site, "items")


def _check_dataitem_ref(value: Any, site: str, step_name: str, key: str) -> None:
    """Refuse a result or pipeline parameter for a ``DataItem`` parameter (artifacts only)."""
    ref = value.ref if isinstance(value, Collected) else value
    if isinstance(ref, OutputRef) and ref.kind == "artifact":
        return
    if isinstance(value, PipelineParam) and value.type == "DataItem":  # a URL input
        return
    what = "pipeline parameter" if isinstance(ref, PipelineParam) else "result (a value)"
    raise PipelineError(
        f"{site}: parameter {key!r} of step {step_name!r} is a DataItem (an artifact input) but "
        f"gets {value!r}, a {what}; pass an artifact (node.outputs['key']) or a pipeline "
        "parameter typed DataItem (a URL input), or retype the parameter to take the value"
    )


def _check_nested(value: Any, site: str, key: str) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (Operand, Collected, NodeHandle)):
            raise PipelineError(
                f"{site}: {key} holds {item!r} inside a list or dict; pass each "
                "reference as its own parameter (or use collect() on a map)"
            )
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
