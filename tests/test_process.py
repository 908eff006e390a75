"""``mlflowlet._process``: one fork hook for the package, the live contexts, and ``reset()``."""

from __future__ import annotations

import os

import pytest

from mlflowlet import _capture, _fdcapture, _process, new_runner
from mlflowlet.context import Context, activate, get_active_context
from mlflowlet.db import get_run_db
from mlflowlet.errors import RunDBError
from mlflowlet.model import RunObject


def _child_output(body) -> bytes:
    """Fork; the child runs ``body`` (returning bytes) and exits; return what it wrote."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, body())
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 4096):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return b"".join(chunks)


def test_fork_hooks_run_in_the_child_in_the_interpreters_order():
    seen: list[str] = []
    hooks = {name: (lambda name=name: seen.append(name)) for name in ("b1", "b2", "c1", "c2", "p")}
    _process.at_fork(before=hooks["b1"], child=hooks["c1"])
    _process.at_fork(before=hooks["b2"], child=hooks["c2"], parent=hooks["p"])
    try:
        child = _child_output(lambda: ",".join(seen).encode())
    finally:
        for hook in hooks.values():  # leave the process as it was
            for registry in (_process._before, _process._after_in_child, _process._after_in_parent):
                if hook in registry:
                    registry.remove(hook)
    # before-hooks last registered first (as os.register_at_fork runs them), the others in order
    assert child == b"b2,b1,c1,c2"
    assert seen == ["b2", "b1", "p"]


def test_reset_closes_cached_run_dbs_and_clears_the_active_run(dbdir):
    db = get_run_db()
    db.store_run({"metadata": {"uid": "u1", "name": "kept"}}, "u1")
    ctx = Context(RunObject(), None)  # in memory: nothing to finish at exit
    activate(ctx)
    assert get_active_context() is ctx and _capture._sink.get() is not None
    assert _fdcapture.capture.active()  # the active run's fd-level output goes to its sink
    _process.reset()
    assert get_active_context() is None and _capture._sink.get() is None
    assert not _fdcapture.capture.active()  # nor does a forgotten run keep the fds
    with pytest.raises(RunDBError, match="closed"):
        db.read_run("u1")  # the cached connection was closed...
    again = get_run_db()
    assert again is not db  # ...and forgotten: the next one is fresh
    assert again.read_run("u1")["metadata"]["name"] == "kept"


def test_every_context_is_live_until_dropped():
    def handler(context):
        assert context in _process.live_contexts  # where interrupts and aborts find it
        context.log_result("ok", 1)

    assert new_runner().run(handler=handler).state == "completed"
