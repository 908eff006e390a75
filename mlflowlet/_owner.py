"""Which process owns a running run, and whether that process is still alive.

A run records its owner when it starts (``status.process``: host, pid and the process's start
time) and a heartbeat (``status.heartbeat``) at each write. A reader on the same host asks the
kernel whether that pid still runs *the same process*: on Linux the start time is the process's
start in clock ticks since boot plus the boot id (``/proc/<pid>/stat``,
``/proc/sys/kernel/random/boot_id``), so a recycled pid or a reboot is not mistaken for the
owner. Elsewhere only the pid is checked. A reader on another host cannot see the process: it
relies on the heartbeat being older than ``heartbeat_timeout``.

Standard library only: the run DBs (which resolve dead owners) and the context (which records
the owner) both use it.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

_identity: dict[int, dict[str, Any]] = {}  # pid -> this process's identity (a fork has its own)
_boot_id: list[str] = []


def hostname() -> str:
    """Return this machine's host name (``os.uname`` avoids importing ``socket``)."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


def boot_id() -> str:
    """Return the kernel's boot id (Linux), empty elsewhere."""
    if not _boot_id:
        try:
            with open("/proc/sys/kernel/random/boot_id") as fh:
                _boot_id.append(fh.read().strip())
        except OSError:
            _boot_id.append("")
    return _boot_id[0]


def start_ticks(pid: int) -> int | None:
    """Return when process ``pid`` started (clock ticks since boot), or None when unknown/gone."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and ')': fields restart after the last ')'
    fields = text[text.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of stat(5): starttime
    except (IndexError, ValueError):
        return None


def process_identity() -> dict[str, Any]:
    """Return this process's identity: ``host``, ``pid``, ``started`` (ticks) and ``boot``."""
    pid = os.getpid()
    found = _identity.get(pid)
    if found is None:
        found = {"host": hostname(), "pid": pid, "started": start_ticks(pid), "boot": boot_id()}
        _identity.clear()  # a forked child drops its parent's entry
        _identity[pid] = found
    return dict(found)


def process_alive(pid: int, started: Any = None, boot: Any = None) -> bool:
    """Return whether process ``pid`` of this host is alive and is the one that was recorded."""
    if boot and boot_id() and boot != boot_id():
        return False  # recorded before the last reboot
    if os.path.isdir("/proc/self"):
        now = start_ticks(pid)
        if now is None:
            return False
        return started is None or now == started
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def _parse_time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def died_message(run: dict[str, Any], heartbeat_timeout: float) -> str:
    """Return why a ``running`` run's owner is known to be gone, or ``''`` when it may be alive.

    Same host: the recorded process no longer runs. Another host: no heartbeat for longer than
    ``heartbeat_timeout`` seconds. A run that recorded no owner is never judged.
    """
    status = run.get("status") or {}
    proc = status.get("process") or {}
    pid, host = proc.get("pid"), proc.get("host")
    if status.get("state") != "running" or not pid or not host:
        return ""
    beat = status.get("heartbeat") or status.get("last_update") or status.get("start_time") or ""
    where = f"pid {pid} on {host}, last heartbeat {beat or 'never'}"
    if host == hostname():
        if process_alive(pid, proc.get("started"), proc.get("boot")):
            return ""
        return f"process died ({where})"
    when = _parse_time(beat)
    if when is None:
        return ""
    age = (datetime.now(timezone.utc) - when).total_seconds()
    if age <= heartbeat_timeout:
        return ""
    return f"process died ({where}; no heartbeat for {age:.0f} s, timeout {heartbeat_timeout:g} s)"


def is_died_message(text: str) -> bool:
    """Whether ``text`` is the error :func:`died_message` records."""
    return (text or "").startswith("process died (")


def mark_died(run: dict[str, Any], message: str) -> dict[str, Any]:
    """Return ``run`` ended ``error`` with ``message`` (ended at its last heartbeat)."""
    status = dict(run.get("status") or {})
    beat = status.get("heartbeat") or status.get("last_update") or status.get("start_time") or ""
    now = datetime.now(timezone.utc).isoformat()
    status.update(state="error", error=message, end_time=beat or now, last_update=now)
    return {**run, "status": status}


def alive_note(identity: dict[str, Any]) -> str:
    """Return the log line a live owner writes after a reader's wrong ``process died`` verdict."""
    return (
        f"mlflowlet: the process died verdict above was wrong: the run's process (pid "
        f"{identity.get('pid')} on {identity.get('host')}) is alive and the run goes on; no "
        "heartbeat of it reached the run DB within heartbeat_timeout (it was paused or cut off "
        "from the DB, or the reader's clock runs ahead)\n"
    )
