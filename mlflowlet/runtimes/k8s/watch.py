"""Following a submitted workload (Job, MPIJob, SparkApplication) until its runs end.

:class:`Watch` polls the workload's state and its pods through the runtime's API objects,
streams each pod's log into the run's log (one thread per pod, ``follow=True``), and turns each
finished pod into a finished run: from the shared run DB when the pod wrote to it, else from the
entrypoint's last ``MLFLOWLET_RUN_JSON=`` line (or the container's termination message). A pod
that can never succeed (image pull, OOMKilled, eviction), a workload that fails (deadline,
back-off limit) and a pod that never starts (``start_timeout``, with its last event) end the
open runs as ``error`` with a one-line reason.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..._text import log_bytes
from ..._wire import RUN_JSON_MARKER, read_run_json
from ...errors import MlflowletError
from ...model import RunObject, now_iso
from .._sweep import sweep_stopped
from .pods import last_event, pod_problem, terminated

if TYPE_CHECKING:
    from ...db.base import RunDB

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
_FLUSH_SECONDS = 1.0
_JOIN_SECONDS = 30.0


class Follower:
    """Reads one pod's log in a thread: stores it in the run's log, echoes it, keeps the record."""

    def __init__(self, rt: Any, pod: str, run: RunObject, db: RunDB, prefix: str) -> None:
        self.rt, self.pod, self.run, self.db, self.prefix = rt, pod, run, db, prefix
        self.run_json = ""
        self.error = ""
        self._thread = threading.Thread(target=self._read, daemon=True, name=f"log-{pod}")
        self._thread.start()

    def _read(self) -> None:
        meta, masker = self.run.metadata, self.rt._masker(self.run)
        unsaved: list[str] = []
        last = time.monotonic()
        try:
            resp = self.rt.client.log_stream(self.pod, self.rt.workload.container)
            for raw in resp:
                line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
                if line.startswith(RUN_JSON_MARKER):
                    self.run_json = line  # the entrypoint's report, never echoed
                    continue
                line = masker.mask(line) if masker is not None else line
                line = self.prefix + line if line.endswith("\n") else self.prefix + line + "\n"
                unsaved.append(line)
                if self.rt.watch_output:
                    sys.stdout.write(line)
                if time.monotonic() - last >= _FLUSH_SECONDS:
                    self.db.store_log(meta.uid, meta.project, log_bytes("".join(unsaved)))
                    unsaved, last = [], time.monotonic()
            resp.release_conn()
        except Exception as exc:  # the pod vanished, or the API refused: keep what we have
            self.error = f"reading the log of pod {self.pod} failed: {exc}"
        if unsaved:
            self.db.store_log(meta.uid, meta.project, log_bytes("".join(unsaved)))

    def join(self) -> None:
        """Wait (bounded) for the log to end."""
        self._thread.join(timeout=_JOIN_SECONDS)


class Watch:
    """Follows one workload whose runs are ``runs`` (index ``i`` is completion index ``i``)."""

    def __init__(self, rt: Any, name: str, runs: list[RunObject], db: RunDB, indexed: bool) -> None:
        self.rt, self.name, self.db, self.indexed = rt, name, db, indexed
        self.open: dict[int, RunObject] = dict(enumerate(runs))
        self.followers: dict[str, Follower] = {}
        self.seen: set[str] = set()
        self.failures: dict[int, str] = {}

    def follow(self) -> Iterator[RunObject]:
        """Yield each run as it ends (in the order they end)."""
        rt, begun, started = self.rt, time.monotonic(), False
        try:
            while self.open:
                try:
                    state, message = rt.client.state(rt.workload, self.name)
                except Exception as exc:
                    if getattr(exc, "status", None) != 404:
                        raise
                    yield from self._deleted()  # run.abort() (or kubectl delete) removed it
                    return
                for pod in rt.client.pods(rt.workload, self.name):
                    started = started or _started(pod)
                    yield from self._pod(pod)
                    if not self.open:
                        return
                    if sweep_stopped():  # a stop condition: the pods still going are not needed
                        yield from self._stop_rest(sweep_stopped())
                        return
                    waiting = pod.status is None or pod.status.phase in ("Pending", "Running")
                    problem = pod_problem(pod) if waiting else ""
                    if problem:
                        rt._delete(self.name)
                        yield from self._fail_open(problem)
                        return
                if state:
                    yield from self._fail_open(message or f"the {rt.workload.kind} {state}")
                    return
                if not started and time.monotonic() - begun > rt.start_timeout:
                    yield from self._fail_open(self._not_started())
                    return
                time.sleep(rt.poll_interval)
        except KeyboardInterrupt as exc:
            from ..._interrupt import reason

            rt._delete(self.name)
            for run in self.open.values():
                rt._finish(run, self.db, "aborted", reason(exc))
            raise

    def _not_started(self) -> str:
        rt = self.rt
        names = [p.metadata.name for p in rt.client.pods(rt.workload, self.name)] or [self.name]
        event = last_event(rt.client.core, rt.namespace, names)
        rt._delete(self.name)
        return (
            f"the {rt.workload.kind} {self.name} did not start within {rt.start_timeout:g} s "
            f"(start_timeout); last event: {event or 'none recorded'}"
        )

    def _index(self, pod: Any) -> int:
        if not self.indexed:
            return 0
        annotations = pod.metadata.annotations or {}
        labels = pod.metadata.labels or {}
        value = annotations.get(INDEX_ANNOTATION) or labels.get(INDEX_ANNOTATION, "-1")
        return int(value) if str(value).isdigit() else -1

    def _pod(self, pod: Any) -> Iterator[RunObject]:
        index, name = self._index(pod), pod.metadata.name
        run = self.open.get(index)
        if run is None:
            return
        phase = pod.status.phase if pod.status else "Pending"
        if phase in ("Running", "Succeeded", "Failed") and name not in self.followers:
            prefix = f"[iter {run.metadata.iteration}] " if self.indexed else ""
            self.followers[name] = Follower(self.rt, name, run, self.db, prefix)
        if phase not in ("Succeeded", "Failed") or name in self.seen:
            return
        self.seen.add(name)
        self.followers[name].join()
        final = self._outcome(pod, self.followers[name], run, phase)
        if final.state == "error" and phase == "Failed" and self.rt.backoff_limit > 0:
            self.failures[index] = final.status.error  # the Job may retry this pod
            return
        del self.open[index]
        yield final

    def _outcome(self, pod: Any, follower: Follower, run: RunObject, phase: str) -> RunObject:
        rt, db, meta = self.rt, self.db, run.metadata
        record = follower.run_json or _termination_record(pod, rt.workload.container)
        if rt._shared_db(db):
            try:
                final = RunObject.model_validate(
                    db.read_run(meta.uid, meta.project, meta.iteration)
                )
                if final.state in ("completed", "error", "aborted"):
                    return final
            except (MlflowletError, ValueError):
                pass
        if record:
            try:
                data = read_run_json(record)
            except MlflowletError as exc:
                return rt._finish(run, db, "error", f"pod {pod.metadata.name}: {exc}")
            got = (data["metadata"].get("uid"), data["metadata"].get("iteration", 0))
            if got != (meta.uid, meta.iteration):
                return rt._finish(
                    run,
                    db,
                    "error",
                    f"pod {pod.metadata.name} reported run "
                    f"{got[0]} iteration {got[1]}, not {meta.uid} {meta.iteration}",
                )
            if data.get("compact"):  # the termination message: the outcome, not the whole run
                data = _merged(run, data)
            data["spec"]["secret_sources"] = run.to_dict()["spec"]["secret_sources"]
            artifacts = data.get("status", {}).get("artifacts") or []
            db.commit_run(data, [a for a in artifacts if a.get("key")])
            return RunObject.model_validate(data)
        if phase == "Succeeded" and not run.spec.handler:  # a plain script reports nothing
            return rt._finish(run, db, "completed", "")
        term = terminated(pod, rt.workload.container)
        code = f"exit code {term.exit_code}, {term.reason}" if term is not None else phase
        error = pod_problem(pod) or (
            f"pod {pod.metadata.name} ended {phase} ({code}) without reporting the run"
            f"{'; ' + follower.error if follower.error else ''}; see `mlflowlet logs {meta.uid}`"
        )
        return rt._finish(run, db, "error", error)

    def _stop_rest(self, why: str) -> Iterator[RunObject]:
        self.rt._delete(self.name)
        text = f"{why}: the {self.rt.workload.kind} {self.name} was deleted with its other pods"
        for _, run in sorted(self.open.items()):
            yield self.rt._finish(run, self.db, "aborted", text)
        self.open.clear()

    def _deleted(self) -> Iterator[RunObject]:
        text = f"aborted: the {self.rt.workload.kind} {self.name} was deleted"
        for _, run in sorted(self.open.items()):
            yield self.rt._finish(run, self.db, "aborted", text)
        self.open.clear()

    def _fail_open(self, reason: str) -> Iterator[RunObject]:
        for index, run in sorted(self.open.items()):
            yield self.rt._finish(run, self.db, "error", self.failures.get(index) or reason)
        self.open.clear()


def _merged(run: RunObject, compact: dict) -> dict:
    """Return ``run`` with the outcome a compact termination record carries.

    (:func:`mlflowlet._termlog.compact_record`; what it had to leave out is named in the
    run's annotations.)
    """
    data = run.to_dict()
    data["status"].update({k: v for k, v in compact["status"].items() if v is not None})
    data["status"]["error"] = compact["status"].get("error") or ""
    if compact.get("truncated"):
        left = ", ".join(compact["truncated"])
        data["metadata"].setdefault("annotations", {})["mlflowlet.io/truncated"] = (
            f"{left}: more than the 4 KiB termination message holds; see the run's log"
        )
    return data


def _started(pod: Any) -> bool:
    phase = pod.status.phase if pod.status else "Pending"
    return phase in ("Running", "Succeeded", "Failed") or bool(pod_problem(pod))


def _termination_record(pod: Any, container: str) -> str:
    term = terminated(pod, container)
    message = (term.message or "") if term is not None else ""
    lines = [ln for ln in message.splitlines() if ln.startswith(RUN_JSON_MARKER)]
    return lines[-1] if lines else ""


def fail(run: RunObject, state: str, error: str) -> RunObject:
    """Set a run's terminal ``state`` and ``error`` (and its end time)."""
    run.status.state, run.status.error = state, error
    run.status.start_time = run.status.start_time or now_iso()
    run.status.end_time = run.status.last_update = now_iso()
    return run
