"""Ctrl-C and SIGTERM while runs execute: stop the work, record every unfinished run ``aborted``.

:func:`guard` is held by ``Runtime.run`` and a pipeline's local run in the main thread. While it
is held, SIGINT and SIGTERM raise :class:`~mlflowlet.errors.Interrupted` in the main thread
(without it SIGTERM kills the process before anything is recorded); a second signal while the
first is being handled ends the process at once (``os._exit(128 + signum)``; the subprocess
runtime's watchdog still ends the child process trees). A handler installed by the application
itself is left in place.

When the guarded call ends by an interrupt, work running in :class:`DaemonPool` threads gets the
interrupt raised in it too (at its next Python bytecode), and every context started during the
call that has not finished (a sweep's parent, in-flight iterations, pipeline steps) is finished
``aborted`` with what it had logged; whatever such a thread records afterwards is dropped.
Pool threads are daemons, so the process can exit without waiting for a handler stuck in C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from . import _process
from .errors import Interrupted

if TYPE_CHECKING:  # ctypes, logging, queue and concurrent.futures load when used: not per run
    import queue
    from concurrent.futures import Future

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# signal.getsignal/signal.signal turn each handler into a ``Handlers`` enum and back, which for a
# Python function is a failed enum lookup (~2-3 us a call), and a guarded run makes eight calls.
# The C functions under them take and return the very same handlers (SIG_DFL and SIG_IGN as the
# ints the enum members equal), so what is saved, compared (_ours) and restored is unchanged.
_signal_c = getattr(signal, "_signal", signal)  # the _signal module signal.py wraps
_get_handler: Callable[[int], Any] = getattr(_signal_c, "getsignal", signal.getsignal)
_set_handler: Callable[[int, Any], Any] = getattr(_signal_c, "signal", signal.signal)
_GRACE = 1.0  # seconds for interrupted worker threads to record their own abort
_state: dict[str, Any] = {"depth": 0, "first": 0, "saved": {}, "why": ""}
_workers: weakref.WeakSet[threading.Thread] = weakref.WeakSet()  # busy pool threads


def _handle(signum: int, frame: Any) -> None:
    if _state["first"]:  # a second interrupt while the first is handled: leave now
        os._exit(128 + _state["first"])
    _state["first"] = signum
    raise Interrupted(signum)


def _ours(handler: Any, signum: int) -> bool:
    default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
    return handler in (default, signal.SIG_DFL, _handle)


def reason(exc: BaseException | None = None) -> str:
    """Describe an interrupt for a run's error: ``aborted by SIGTERM`` or ``... Ctrl-C``.

    A ``KeyboardInterrupt`` that no signal raised (code raised it: while :func:`guard` is held
    a signal raises :class:`~mlflowlet.errors.Interrupted`, and Python's own Ctrl-C has no
    message, and signals never raise outside the main thread) is described as that, and so are
    the runs it aborts.
    """
    signum = getattr(exc, "signum", 0) or _state["first"]
    if not signum and _state["why"]:
        return str(_state["why"])
    coded = exc is not None and (
        exc.args or _state["depth"] or threading.current_thread() is not threading.main_thread()
    )  # signals raise in the main thread only: elsewhere a bare KeyboardInterrupt is code's
    if not signum and coded:
        said = f" ({exc})" if str(exc) else ""
        return f"aborted: the code raised KeyboardInterrupt{said}; no signal was sent"
    signum = signum or signal.SIGINT
    if signum == signal.SIGINT:
        return "aborted by Ctrl-C (SIGINT)"
    return f"aborted by {signal.Signals(signum).name}"


def exit_now(exc: BaseException) -> NoReturn:
    """End the process after an interrupt: say so, flush, exit 130 (SIGINT) or 143 (SIGTERM).

    ``os._exit`` after the runs were recorded: threads still running a handler, or a library's
    non-daemon thread, must not hold the process past its bound.
    """
    signum = getattr(exc, "signum", 0) or signal.SIGINT
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    try:
        sys.stderr.write(f"aborted ({name}): unfinished runs are marked aborted\n")
        sys.stderr.flush()
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    logging = sys.modules.get("logging")  # loaded by whoever logs: nothing to flush otherwise
    if logging is not None:
        logging.shutdown()
    os._exit(128 + signum)


def on_sigterm() -> None:
    """Make SIGTERM raise :class:`Interrupted` for the rest of this process (a script's run).

    Only from the main thread, and only over the default action; a second SIGTERM while the
    first is handled ends the process at once.
    """
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _handle)


def _install() -> None:
    saved = {}
    for signum in _SIGNALS:
        current = _get_handler(signum)
        if _ours(current, signum):
            saved[signum] = current
            _set_handler(signum, _handle)
    _state["saved"] = saved


def _restore() -> None:
    for signum, handler in _state["saved"].items():
        if _get_handler(signum) is _handle:
            _set_handler(signum, handler)
    _state["saved"], _state["first"] = {}, 0


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into :class:`Interrupted` and abort what the block left unfinished."""
    main = threading.current_thread() is threading.main_thread()
    before = weakref.WeakSet(_process.live_contexts)
    if main and _state["depth"] == 0:
        _install()
    _state["depth"] += main
    try:
        yield
    except KeyboardInterrupt as exc:
        _state["why"] = reason(exc)  # what the threads it interrupts record too
        try:
            abort_unfinished(before, _state["why"])
        finally:
            _state["why"] = ""
        raise
    finally:
        _state["depth"] -= main
        if main and _state["depth"] == 0:
            _restore()


def abort_unfinished(before: Any, why: str) -> None:
    """Interrupt the pool threads, then finish every context not in ``before`` as ``aborted``."""
    busy = [t for t in list(_workers) if t.is_alive()]
    for thread in busy:
        raise_in(thread, Interrupted(_state["first"] or signal.SIGINT))
    deadline = time.monotonic() + _GRACE
    while time.monotonic() < deadline and any(_open(c) for c in _busy_contexts(before)):
        time.sleep(0.02)  # the threads' own grace to record their abort, not a synchronisation
    for ctx in sorted(_busy_contexts(before), key=lambda c: -c._run.metadata.iteration):
        if _open(ctx):
            seal(ctx, why)


def _busy_contexts(before: Any) -> list[Any]:
    return [c for c in list(_process.live_contexts) if c not in before]


def _open(ctx: Any) -> bool:
    return not ctx._recorder.finished and ctx._run.status.state in ("pending", "running")


def seal(ctx: Any, why: str) -> None:
    """Finish ``ctx`` as ``aborted`` from this thread; later writes from other threads drop."""
    ctx._recorder.sealed_for = threading.get_ident()
    try:
        ctx._finish("aborted", why)
    except Exception:  # a DB that fails now: the dead-owner check resolves the run later
        pass


def raise_in(thread: threading.Thread, exc: BaseException) -> None:
    """Raise ``exc``'s type in ``thread`` at its next Python bytecode (a best effort)."""
    ident = thread.ident
    if ident is None or thread is threading.current_thread():
        return
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(type(exc)))


class DaemonPool:
    """A small thread pool of daemon threads returning ``concurrent.futures.Future`` objects.

    Like ``ThreadPoolExecutor`` except that its threads never hold up the process's exit (a
    handler stuck after Ctrl-C), and that :func:`abort_unfinished` can interrupt them.
    """

    def __init__(self, workers: int, name: str = "mlflowlet-worker") -> None:
        self._jobs: queue.SimpleQueue[
            tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None
        ]
        import queue

        self._jobs = queue.SimpleQueue()
        self._workers, self._name = max(1, workers), name
        self._threads: list[threading.Thread] = []  # started as jobs come: never more than jobs

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` in a pool thread; return its future."""
        from concurrent.futures import Future

        fut: Future[Any] = Future()
        self._jobs.put((fut, fn, args))
        if len(self._threads) < self._workers:
            name = f"{self._name}-{len(self._threads)}"
            thread = threading.Thread(target=self._loop, daemon=True, name=name)
            self._threads.append(thread)
            thread.start()
        return fut

    def has_queued(self) -> bool:
        """Whether jobs wait for a thread (False: every submitted job has started)."""
        return not self._jobs.empty()

    def _loop(self) -> None:
        me = threading.current_thread()
        while True:
            fut = None
            try:
                job = self._jobs.get()
                if job is None:
                    return
                fut, fn, args = job
                if not fut.set_running_or_notify_cancel():
                    continue
                _workers.add(me)
                try:
                    result = fn(*args)
                finally:
                    _workers.discard(me)
                fut.set_result(result)
            except BaseException as exc:  # handed to the caller through the future
                if fut is not None and not fut.done():
                    fut.set_exception(exc)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the threads (after the queued jobs); ``wait`` joins them."""
        for _ in self._threads:
            self._jobs.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
