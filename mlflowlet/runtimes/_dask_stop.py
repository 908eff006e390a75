"""Bounded waits around Dask calls that have none, and stopping a task that overran its timeout.

``distributed`` bounds the TCP connect but not the handshake that follows it (its ``connect``
awaits the peer's first message forever), so a scheduler address that accepts connections and
never answers hangs ``Client()``. :func:`connect` first probes the address with its own
handshake under ``asyncio.wait_for`` and then builds the client in a watchdog thread, so either
answers within ``connect_timeout`` or the run fails naming the address.

Dask's ``cancel`` releases a task but cannot stop the thread running it, so a timed-out task
keeps its worker busy. :func:`stop_overdue` finds the worker running each overdue task, raises
``TimeoutError`` in that thread (taken at its next Python bytecode), gives it a moment, and
restarts the worker process (through its nanny) when the task ignored that; the run's error says
which happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

_STOP_GRACE = 2.0  # seconds a cancelled task gets to leave its worker's thread
_CALL_TIMEOUT = 10.0


def bounded(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    """Return ``fn()`` computed in a daemon thread, or raise ``TimeoutError`` after ``timeout``."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True, name=f"mlflowlet-{what}")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def probe(address: str, timeout: float) -> None:
    """Connect to a Dask scheduler and complete the handshake, within ``timeout`` seconds.

    Raises:
        TimeoutError: the peer accepted the connection but did not answer in time.
        OSError: nothing listens there.
    """
    import asyncio

    from distributed.comm import connect

    async def handshake() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout)
        await comm.close()

    bounded(lambda: asyncio.run(handshake()), timeout + 1, "dask-probe")


def _running(client: Any, keys: list[str]) -> dict[str, str]:
    try:
        processing = client.sync(client.scheduler.processing, callback_timeout=_CALL_TIMEOUT)
    except Exception:  # the scheduler cannot tell
        return {}
    return {k: w for w, ks in (processing or {}).items() for k in ks if k in keys}


def _cancel(client: Any, keys: list[str]) -> None:
    futures = [_future(client, k) for k in keys]
    try:
        client.sync(client._cancel, futures, force=True, callback_timeout=_CALL_TIMEOUT)
    except Exception:  # a scheduler that does not answer: the health check reports it
        pass


def stop_tasks(client: Any, keys: list[str]) -> None:
    """Cancel tasks and interrupt the threads running them (no restart: for Ctrl-C, early stops)."""
    if not keys:
        return
    running = _running(client, keys)
    _cancel(client, keys)
    if running:
        _interrupt_tasks(client, running)


def stop_overdue(client: Any, keys: list[str]) -> dict[str, str]:
    """Stop the overdue tasks ``keys``; return what was done to each, for its run's error."""
    running = _running(client, keys)
    _cancel(client, keys)
    if not running:
        return {}
    _interrupt_tasks(client, running)
    stuck = _still_running(client, running)
    out = {k: "it was cancelled and its worker thread freed" for k in running}
    if stuck:
        workers = sorted(set(stuck.values()))
        try:
            client.restart_workers(workers, timeout=30, raise_for_error=False)
            done = "its worker process ({}) was restarted"
        except Exception as exc:  # no nanny to restart it
            done = f"restarting its worker ({{}}) failed ({exc}); the worker stays busy"
        for key, worker in stuck.items():
            out[key] = f"it ignored cancellation, so {done.format(worker)}"
    return out


def _future(client: Any, key: str) -> Any:
    from distributed import Future

    return Future(key, client)


def _on_workers(client: Any, fn: Callable[..., Any], running: dict[str, str]) -> dict[str, Any]:
    keys, workers = list(running), sorted(set(running.values()))
    return bounded(  # client.run has no timeout of its own
        lambda: client.run(fn, keys=keys, workers=workers, on_error="ignore"), 10, "dask-run"
    )


def _interrupt_tasks(client: Any, running: dict[str, str]) -> None:
    def interrupt(dask_worker: Any, keys: list[str]) -> int:
        import ctypes

        hit = 0
        for ident, key in list(dask_worker.active_threads.items()):
            if key in keys:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(ident), ctypes.py_object(TimeoutError)
                )
                hit += 1
        return hit

    try:
        _on_workers(client, interrupt, running)
    except Exception:  # a worker gone or unreachable: the restart below covers it
        pass


def _still_running(client: Any, running: dict[str, str]) -> dict[str, str]:
    def busy(dask_worker: Any, keys: list[str]) -> list[str]:
        return [k for k in dask_worker.active_threads.values() if k in keys]

    deadline = time.monotonic() + _STOP_GRACE
    while True:
        try:
            found = _on_workers(client, busy, running)
            stuck = {k: w for w, ks in found.items() if isinstance(ks, list) for k in ks}
        except Exception:  # cannot tell: treat all as stuck
            stuck = dict(running)
        if not stuck or time.monotonic() > deadline:
            return stuck
        time.sleep(0.1)  # the task's grace to unwind after the interrupt, not a synchronisation
