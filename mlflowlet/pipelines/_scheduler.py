"""The local executor's scheduling loop: which thread runs each ready step, and when.

Steps run in topological order, independent ones at once in ``max_parallel`` pool threads (1:
every step in the calling thread). A step that is alone (nothing else running or ready) runs in
the scheduler's own thread, so a chain costs no thread hand-offs. Finished steps come back
through an :class:`~mlflowlet.pipelines._inbox.Inbox`, taken in batches.

Trivial steps run in the scheduler's thread too, once this run has shown them trivial
(:class:`Learner`): handing a step to a pool thread and back costs about as much as a step that
only computes a little, and threads gain such a step nothing under the GIL. A step function's
calls are timed by their runs' recorded duration (handler start to finish); once its last
:data:`LEARN` calls each took at most :data:`TRIVIAL` seconds, its further ready steps run here
one after the other, while the pool keeps running the others (their finished steps are taken
between two inline steps). A call over :data:`TRIVIAL` re-teaches: the function's next call
goes back to the pool, alone, and only a trivial one there lets the rest run inline again (a
slow one: the function learns from the start). The pool holds at most :data:`AHEAD` steps a
thread, so what is learned applies to the rest of a wide fan-out; only a function never known
trivial whose last call was slow has all its ready steps go to the pool at once.

Never inline: a step with a ``timeout=`` (each attempt in its own thread) or retries, a map or
hyper-parameters (their iterations' own threads), a container step. Records are those of a step
that is alone: ``running``, then the step's end, each written as it happens. The limit: a
function whose first calls were trivial but whose later call blocks until a step that has not
started yet runs (a ready step of its own function, or a step downstream of a running one) waits for
good, as it does with ``max_parallel=1``. A step runs inline only while every ready step
could too: a ready step of another kind (one it may wait for) goes to the pool first.
"""

from __future__ import annotations

import functools
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from ._inbox import Inbox
from ._loops import LoopView
from ._stepexec import execute

if TYPE_CHECKING:
    from .executor import LocalExecutor
    from .graph import Node

TRIVIAL = 0.001  # seconds: a call this short (handler start to finish) counts as trivial
LEARN = 3  # trivial calls in a row before a step function runs inline
AHEAD = 4  # steps handed to the pool at most, per pool thread


class Learner:
    """Which step functions run inline: the last :data:`LEARN` calls of each were trivial.

    A slow call of a function that ran inline puts it on probation: its next call runs in the
    pool, alone (its other ready steps wait for it); trivial, the function runs inline again (the
    slow call was a pause of the machine, not of the step); slow, it learns from the start.
    """

    def __init__(self) -> None:
        self._trivial: dict[Any, int] = {}  # step function -> its trivial calls in a row
        self._probe: dict[Any, bool] = {}  # on probation -> whether its probe call is out
        self._was_inline: set[Any] = set()  # functions that were known trivial once

    def inline(self, node: Node) -> bool:
        """Whether ``node`` may run in the scheduler's thread (its function is known trivial)."""
        return self.known(self.key(node))

    @staticmethod
    def key(node: Node) -> Any:
        """Return ``node``'s step function, or None when it never runs inline (see the doc)."""
        if node.map is not None or node.hyper is not None:
            return None
        spec = node.spec
        if spec.timeout or spec.retries or spec.container is not None:
            return None
        return node.step.fn

    def known(self, fn: object) -> bool:
        """Whether ``fn`` (a :meth:`key`) is known trivial: its steps may run inline."""
        return fn is not None and self._trivial.get(fn, 0) >= LEARN

    def slow(self, node: Node) -> bool:
        """Whether ``node``'s function was never known trivial and its last call was slow."""
        fn = getattr(node.step, "fn", None)
        return self._trivial.get(fn, -1) == 0 and fn not in self._was_inline

    def held(self, node: Node) -> bool:
        """Whether ``node`` waits: its function is on probation and the probe call is out."""
        return self._probe.get(getattr(node.step, "fn", None), False)

    def sent(self, node: Node) -> None:
        """Note that ``node`` went to the pool (the probe, when its function is on probation)."""
        fn = getattr(node.step, "fn", None)
        if fn in self._probe:
            self._probe[fn] = True

    def note(self, node: Node, duration: float | None) -> None:
        """Count a finished call of ``node`` (its recorded ``duration``; None: unknown)."""
        fn = getattr(node.step, "fn", None)
        if fn is None:
            return
        count = self._trivial.get(fn, 0)
        self._probe.pop(fn, None)
        if duration is not None and duration <= TRIVIAL:
            self._trivial[fn] = count + 1
            if count + 1 >= LEARN:
                self._was_inline.add(fn)
        elif count >= LEARN:  # slow after running inline: one trivial call in the pool to return
            self._trivial[fn] = LEARN - 1
            self._probe[fn] = False
        else:  # slow, or not timed: back to the pool until it shows trivial again
            self._trivial[fn] = 0


def schedule(ex: LocalExecutor) -> None:
    """Run the ready steps of ``ex.dag`` until none is left (see the module docstring)."""
    dag = LoopView(ex.dag)  # a mapped sub-pipeline runs as one unit (see _loops)
    waiting = {n.name: len(dag.upstream(n.name)) for n in dag.nodes}
    ready = deque(dag.roots())
    running = 0
    learner = Learner()
    from .._interrupt import DaemonPool

    # daemon threads: after Ctrl-C the process need not wait for a step that still runs
    pool = DaemonPool(ex.max_parallel, "mlflowlet-step") if ex.max_parallel > 1 else None
    inbox = Inbox(pool, waiting, dag.downstream)
    bound = ex.max_parallel * AHEAD
    queued = Counter(learner.key(dag.node(name)) for name in ready)  # ready steps' functions

    def finished(name: str) -> None:
        for down in dag.downstream(name):
            waiting[down] -= 1
            if waiting[down] == 0:
                ready.append(down)
                queued[learner.key(dag.node(down))] += 1

    def inline_now(node: Node) -> bool:
        """Inline only when every ready step could be: none waits behind it for a thread."""
        return pool is None or (
            learner.inline(node) and all(learner.known(fn) for fn, n in queued.items() if n)
        )

    try:
        while ready or running:
            while ready:
                node = dag.node(ready[0])
                inline = inline_now(node)
                if not inline and (
                    learner.held(node) or (running >= bound and not learner.slow(node))
                ):
                    break  # a probe is out, or the pool holds enough to learn from: take first
                ready.popleft()
                queued[learner.key(node)] -= 1
                call = ex._prepare(node)
                if call is None:
                    finished(node.name)
                    continue
                if ex._runs_pending():  # the hits so far are recorded before real work starts
                    ex._flush(True)
                ex._progress(node.name, "running")
                if pool is None or inline or (not running and not ready):
                    # inline, or alone: run it in this thread (no thread hand-off)
                    entry = ex._complete(node, call, execute(call, ex.db))
                    learner.note(node, entry["duration"])
                    finished(node.name)
                    if running and inbox.has_items():
                        break  # steps the pool ended meanwhile: taken before the next one
                else:
                    fut = pool.submit(execute, call, ex.db)
                    fut.add_done_callback(functools.partial(inbox.report, node, call))
                    running += 1
                    learner.sent(node)
            if running:
                batch = inbox.take(ex.interval)  # every step that ended meanwhile
                running -= len(batch)
                for node, call, fut in batch:
                    entry = ex._complete(node, call, fut.result(), flush=False)
                    learner.note(node, entry["duration"])
                    finished(node.name)
                if batch:
                    ex._flush(False)  # one commit at most per batch of state changes
    finally:
        if pool is not None:
            pool.shutdown(wait=False)
