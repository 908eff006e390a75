"""The local executor's scheduling loop: which thread runs each ready step, and when.

Steps run in topological order, independent ones at once in ``max_parallel`` pool threads (1:
every step in the calling thread). A step that is alone (nothing else running or ready) runs in
the scheduler's own thread, so a chain costs no thread hand-offs. Finished steps come back
through an :class:`~mlflowlet.pipelines._inbox.Inbox`, taken in batches: the pool's threads run
their queue without waking the scheduler for each step they end.
"""

from __future__ import annotations

import functools
from collections import deque
from typing import TYPE_CHECKING

from ._inbox import Inbox
from ._loops import LoopView
from ._stepexec import execute

if TYPE_CHECKING:
    from .executor import LocalExecutor


def schedule(ex: LocalExecutor) -> None:
    """Run the ready steps of ``ex.dag`` until none is left (see the module docstring)."""
    dag = LoopView(ex.dag)  # a mapped sub-pipeline runs as one unit (see _loops)
    waiting = {n.name: len(dag.upstream(n.name)) for n in dag.nodes}
    ready = deque(dag.roots())
    running = 0
    from .._interrupt import DaemonPool

    # daemon threads: after Ctrl-C the process need not wait for a step that still runs
    pool = DaemonPool(ex.max_parallel, "mlflowlet-step") if ex.max_parallel > 1 else None
    inbox = Inbox(pool, waiting, dag.downstream)

    def finished(name: str) -> None:
        for down in dag.downstream(name):
            waiting[down] -= 1
            if waiting[down] == 0:
                ready.append(down)

    try:
        while ready or running:
            while ready:
                node = dag.node(ready.popleft())
                call = ex._prepare(node)
                if call is None:
                    finished(node.name)
                    continue
                if ex.hits:  # the hits so far are recorded before real work starts
                    ex._store_lineage()
                ex._progress(node.name, "running")
                if pool is None or (not running and not ready):
                    # alone: run it in this thread (a chain costs no thread hand-offs)
                    ex._complete(node, call, execute(call, ex.db))
                    finished(node.name)
                else:
                    fut = pool.submit(execute, call, ex.db)
                    fut.add_done_callback(functools.partial(inbox.report, node, call))
                    running += 1
            if running:
                batch = inbox.take(ex.interval)  # every step that ended meanwhile
                running -= len(batch)
                for node, call, fut in batch:
                    ex._complete(node, call, fut.result(), flush=False)
                    finished(node.name)
                if batch:
                    ex._flush(False)  # one commit at most per batch of state changes
    finally:
        if pool is not None:
            pool.shutdown(wait=False)
