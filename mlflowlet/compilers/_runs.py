"""What a local check records per container run (shared by the Argo and KFP checks)."""

from __future__ import annotations

import errno
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from .._wire import MAX_ARG


@dataclass
class PodRun:
    """One container run of a compiled workflow, run as a local subprocess.

    Attributes:
        task: the engine's task name.
        node: the pipeline step (node) name.
        iteration: the map item (1-based), 0 when not mapped.
        attempts: how many times it ran (retries).
        returncode: the last exit code.
        run: the run dict the entrypoint printed (``MLFLOWLET_RUN_JSON``), or None.
        earlier: the run dicts the earlier (failed) attempts printed, in order.
        parameters: output parameter name to its text.
        artifacts: output artifact name to the sha256 of its bytes.
        log: the tail of stdout and stderr.
        stdout: what a container step (a plain container, no run record) printed on stdout.
        stderr: what it printed on stderr.
        plain: a container step's ``MLFLOWLET_EXEC_CONFIG`` (``''``: an mlflowlet step).
        started: the sequence number of its first attempt's start (ordering checks).
        ended: the sequence number of its last attempt's end.
    """

    task: str
    node: str
    iteration: int = 0
    attempts: int = 0
    returncode: int | None = None
    run: dict[str, Any] | None = None
    earlier: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    log: str = ""
    stdout: str = ""
    stderr: str = ""
    plain: str = ""
    started: int = 0
    ended: int = 0

    @property
    def ok(self) -> bool:
        """True when the container exited 0."""
        return self.returncode == 0

    @property
    def results(self) -> dict[str, Any]:
        """The recorded run's results."""
        return dict((self.run or {}).get("status", {}).get("results", {}))

    @property
    def state(self) -> str:
        """The recorded run's state (``error`` when none was printed)."""
        return (self.run or {}).get("status", {}).get("state", "error")

    def finish(self, returncode: int, stdout: str, stderr: str) -> None:
        """Record one attempt's exit code, output and the run JSON it printed."""
        from .._wire import read_run_json
        from ..errors import RunError

        if self.run is not None:
            self.earlier.append(self.run)
        self.returncode = returncode
        self.log = (stdout[-2000:] + "\n" + stderr[-2000:]).strip()
        try:
            self.run = read_run_json(stdout)
        except RunError:
            self.run = None
            self.stdout, self.stderr = stdout, stderr


class LocalRunner:
    """What the Argo and KFP checks share: the pods' folder, extra env, secrets, one attempt.

    Attributes:
        workdir: where pods run (their working directory) and write their files.
        env: environment variables added to every pod.
        secrets: ``{secret name: {key: value}}`` standing in for Kubernetes secrets.
        timeout: seconds one container attempt may run.
        pods: every container run, in the order they ran.
        unverified: what a real controller would do that this local run cannot reproduce.
    """

    def __init__(
        self,
        workdir: str,
        env: dict[str, str] | None = None,
        secrets: dict[str, dict[str, str]] | None = None,
        timeout: float = 300.0,
    ) -> None:
        self.workdir, self.timeout = workdir, timeout
        self.env, self.secrets = dict(env or {}), secrets or {}
        self.pods: list[PodRun] = []
        self.unverified: list[str] = []
        self._seq = 0

    def note(self, text: str) -> None:
        """Record a controller behaviour the local run cannot reproduce (once)."""
        if text not in self.unverified:
            self.unverified.append(text)

    def attempt(
        self, pod: PodRun, argv: list[str], env: dict[str, str], timeout: float | None = None
    ) -> bool:
        """Run ``argv`` once as a subprocess in the workdir (``python`` is this interpreter).

        Records the attempt on ``pod`` and returns True when it exited 0; an attempt running
        past ``timeout`` (default: the runner's) is killed and fails, as a pod past its
        deadline.
        """
        if argv and argv[0] in ("python", "python3"):
            argv = [sys.executable, *argv[1:]]
        self._seq += 1
        pod.started = pod.started or self._seq
        limit = min(timeout, self.timeout) if timeout else self.timeout
        try:
            proc = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=limit, cwd=self.workdir
            )
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        except FileNotFoundError:  # a container step's program missing: the shell's 127
            code, out, err = 127, "", f"{argv[0]}: command not found"
        except OSError as exc:  # an argument over Linux's MAX_ARG_STRLEN: a pod's exec fails too
            if exc.errno != errno.E2BIG:
                raise
            longest = max(len(a.encode()) for a in argv)
            code, out, err = (
                126,
                "",
                f"cannot start the step: {longest} bytes in one argument, "
                f"over Linux's {MAX_ARG // 1024} KiB (MAX_ARG_STRLEN); a pod fails so too",
            )
        except subprocess.TimeoutExpired as exc:
            code, out, err = (
                -9,
                _text(exc.stdout),
                _text(exc.stderr) + f"\ntimed out after {limit:g}s",
            )
        self._seq += 1
        pod.ended = self._seq
        pod.attempts += 1
        pod.finish(code, out, err)
        return pod.ok


def _text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""
