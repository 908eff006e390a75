"""Process-wide state in one place: the fork hook, the live contexts, and :func:`reset`.

A module that keeps state for the whole process (cached run DB connections, the active run, the
capture sink, the flush thread, the watchdog of child process trees, locks a forked child must not
inherit held) registers here instead of with the interpreter:

- :func:`at_fork`: what to do around ``os.fork()``. This module is the package's only
  ``os.register_at_fork`` call; hooks run in the order the interpreter would run them had each
  module registered its own (``before`` last-registered first, the others first-registered first).
- :func:`on_reset`: what :func:`reset` undoes. Tests and benchmarks call :func:`reset` between
  cases instead of clearing private caches.
- :data:`live_contexts`: every run context alive in this process (weakly held). Interrupts abort
  the unfinished ones, aborts find a run's context, and a forked child gives them fresh locks.

Imports nothing from mlflowlet, so every layer may use it.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["at_fork", "live_contexts", "on_reset", "reset"]

Hook = Callable[[], None]

live_contexts: weakref.WeakSet[Any] = weakref.WeakSet()

_before: list[Hook] = []
_after_in_parent: list[Hook] = []
_after_in_child: list[Hook] = []
_resets: list[Hook] = []
_lock = threading.Lock()


def at_fork(
    *, child: Hook | None = None, before: Hook | None = None, parent: Hook | None = None
) -> None:
    """Run ``before`` just before ``os.fork()``, then ``parent`` / ``child`` just after it.

    Same contract as :func:`os.register_at_fork`: a hook must not fail, and ``child`` runs in a
    process where only the forking thread exists (a lock another thread held stays held).
    """
    with _lock:
        if before is not None:
            _before.append(before)
        if parent is not None:
            _after_in_parent.append(parent)
        if child is not None:
            _after_in_child.append(child)


def on_reset(hook: Hook) -> Hook:
    """Register ``hook`` to run on :func:`reset` (in registration order); returns it."""
    with _lock:
        _resets.append(hook)
    return hook


def reset() -> None:
    """Bring this process back to a fresh start between independent uses (tests, benchmarks).

    Closes and forgets the cached run DB connections, clears the active run of the calling
    thread/task and its capture sink. What no module has loaded yet has nothing to reset.
    """
    with _lock:
        hooks = list(_resets)
    for hook in hooks:
        hook()


def _run_before() -> None:
    for hook in list(reversed(_before)):
        hook()


def _run_after_in_parent() -> None:
    for hook in list(_after_in_parent):
        hook()


def _run_after_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    for hook in list(_after_in_child):
        hook()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_run_before,
        after_in_parent=_run_after_in_parent,
        after_in_child=_run_after_in_child,
    )
