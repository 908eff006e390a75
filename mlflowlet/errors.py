"""Every error mlflowlet raises, under one root.

Hierarchy (each subclass also inherits the matching builtin, so callers may catch either)::

    MlflowletError
    ├── ConfigError (ValueError)            bad settings, unknown runtime/compiler, bad URL
    │   ├── UnknownBackendError             no runtime kind, URL scheme or compiler by that name
    │   ├── InvalidNameError                a project or run name that cannot become a path
    │   ├── OutsideRootError                a request naming a place outside the server's root
    │   └── ConflictError                   a request that conflicts with what is stored
    ├── BodyTooLarge (ValueError)           a request body over the server's limit (413)
    ├── BodyTimeout (TimeoutError)          a request body that stopped arriving (408)
    ├── MissingDependencyError (ImportError) an optional extra is not installed
    ├── ParameterError (ValueError)         a param that does not coerce, is missing, or is unknown
    │   └── HyperParamError                 bad hyper-params, param file, selector, stop condition
    ├── SecretsError (ValueError)           a secrets source that is missing or malformed
    ├── ArtifactError (ValueError)          an artifact body, key or format that cannot be stored
    │   └── PathTraversalError              a key or target path escaping its root
    ├── DataStoreError (OSError)            a URL that cannot be read or written
    │   ├── DataNotFoundError (FileNotFoundError)
    │   └── ArtifactIntegrityError          a recorded artifact version's bytes changed
    ├── RunDBError (RuntimeError)           the run database cannot be opened or written
    │   └── NotFoundError (KeyError)        a run or artifact that does not exist
    ├── RunError (RuntimeError)             a run ended in error (``.run`` holds the RunObject)
    │   ├── RunEndedError                   a write to a run that already ended (not recorded)
    │   └── ForkedRunError                  a write from a forked child to its parent's run
    ├── PipelineError (ValueError)          a pipeline or step that is badly defined
    │   ├── StepDefinitionError (TypeError) a decorator used on a bad signature
    │   ├── CycleError                      the DAG has a cycle (``.cycle`` lists the steps)
    │   └── InputError                      a step input that cannot be resolved (step fails)
    └── CompileError (ValueError)           a pipeline that a target cannot carry
        └── ExprError                       an Argo/KFP expression the engine would fail on

    KeyboardInterrupt
    └── Interrupted                         SIGINT or SIGTERM during a run (``.signum``); not an
                                            MlflowletError, so ``except Exception`` never eats it

Warnings (``warnings.warn`` categories, under ``MlflowletWarning(UserWarning)``)::

    MlflowletWarning
    └── BareImageWarning                    a compiled step's image is a bare base image

No error type depends on an HTTP library; messages are built here, from the fields.
"""

from __future__ import annotations

from typing import Any


class MlflowletError(Exception):
    """Root of every mlflowlet error."""


class ConfigError(MlflowletError, ValueError):
    """A setting, URL or option is not valid."""


class UnknownBackendError(ConfigError):
    """No runtime, store or compiler is registered under that name."""

    def __init__(self, what: str, name: str, available: list[str]) -> None:
        self.what, self.name, self.available = what, name, sorted(available)
        super().__init__(
            f"unknown {what} {name!r}; available: {', '.join(self.available) or 'none'}"
        )


class InvalidNameError(ConfigError):
    """A project or run name that cannot be used (it would become an unsafe path or text)."""

    def __init__(self, what: str, name: str, reason: str, fix: str = "") -> None:
        self.what, self.name, self.reason = what, name, reason
        super().__init__(f"{what} {name!r} {reason}" + (f"; {fix}" if fix else ""))


class MissingDependencyError(MlflowletError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        self.package, self.extra = package, extra
        super().__init__(f"{package} is not installed: pip install 'mlflowlet[{extra}]'")


class ParameterError(MlflowletError, ValueError):
    """A parameter is missing, unknown, or cannot be coerced to its type."""


class HyperParamError(ParameterError):
    """Hyper-parameters, a param file, a selector or a stop condition is not valid."""


class SecretsError(MlflowletError, ValueError):
    """A secrets source does not exist or is malformed."""


class ArtifactError(MlflowletError, ValueError):
    """An artifact cannot be stored as asked."""


class PathTraversalError(ArtifactError):
    """A key or path tries to leave its root (``..``, absolute, NUL)."""

    def __init__(self, path: str, reason: str = "") -> None:
        self.path = path
        super().__init__(
            f"refused path {path!r}: "
            + (reason or "keys and target paths must be relative, without '..' or NUL characters")
        )


class DataStoreError(MlflowletError, OSError):
    """A URL cannot be read or written."""


class DataNotFoundError(DataStoreError, FileNotFoundError):
    """A URL names nothing."""


class ArtifactIntegrityError(DataStoreError):
    """The bytes at a recorded artifact version's location are not the recorded ones.

    Attributes:
        key: the artifact key.
        version: the version uid (and iteration, when not 0).
        location: the file or URL that was read.
        reason: what differs (size, modification time, ETag or sha256).
    """

    def __init__(self, key: str, version: str, location: str, reason: str) -> None:
        self.key, self.version, self.location, self.reason = key, version, location, reason
        super().__init__(
            f"artifact {key!r} version {version} at '{location}' is not the recorded version: "
            f"{reason}; it was changed or replaced after it was logged (log it again to record "
            "the new bytes as a new version)"
        )


class RunDBError(MlflowletError, RuntimeError):
    """The run database cannot be opened or written."""


class UnstorableValueError(RunDBError):
    """The run DB refused a value it can never store (NUL, a lone surrogate): nothing was written.

    Retrying the same write never helps; the message names the value.
    """


class RecordTooLargeError(RunDBError):
    """A run's record is larger than the run DB accepts in one request (the server's limit).

    Nothing of that write was sent; the message names the limit and the fix.
    """


class PartlyWrittenError(RunDBError):
    """A write split into several requests failed after the first ``written`` log bytes.

    Everything before them (the record, artifact and metric rows, that much of the log) is
    stored; the writer sends the rest again, once.
    """

    def __init__(self, message: str, written: int) -> None:
        super().__init__(message)
        self.written = written


class NotFoundError(RunDBError, KeyError):
    """A run, artifact or log does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RunError(MlflowletError, RuntimeError):
    """A run ended in ``error``; the failed ``RunObject`` is ``.run``."""

    def __init__(self, message: str, run: Any = None) -> None:
        self.run = run
        super().__init__(message)


class RunEndedError(RunError):
    """A result, metric, label or artifact written after its run ended: nothing is recorded."""

    def __init__(self, name: str, uid: str, state: str, what: str) -> None:
        super().__init__(
            f"run {name!r} ({uid}) already ended {state}: {what} was not recorded (nor stored); "
            "write before the handler returns (join the threads it starts)"
        )


class ForkedRunError(RunError):
    """A forked child process writing into the run of the process it was forked from."""

    def __init__(self, name: str, uid: str, parent_pid: int, what: str) -> None:
        super().__init__(
            f"run {name!r} ({uid}) is recorded by process {parent_pid}, which this forked "
            f"process copied it from: {what} was not recorded (its copy would overwrite the "
            "run's record); return the value to that process (multiprocessing returns it), or "
            "record a run of this process's own (new_runner().run / get_or_create_ctx)"
        )


class PipelineError(MlflowletError, ValueError):
    """A pipeline or a step is badly defined or cannot run."""


class StepDefinitionError(PipelineError, TypeError):
    """A decorator was applied to a function it cannot capture."""


class CycleError(PipelineError):
    """The pipeline graph has a cycle."""

    def __init__(self, cycle: list[str], where: str = "") -> None:
        self.cycle = list(cycle)
        path = " -> ".join([*self.cycle, self.cycle[0]]) if self.cycle else "?"
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}the pipeline has a cycle: {path}; remove one of these edges")


class InputError(PipelineError):
    """A step's input cannot be resolved (the step fails without running)."""


class CompileError(MlflowletError, ValueError):
    """A pipeline cannot be compiled for the target as it is."""


class ExprError(CompileError):
    """An expression Argo would fail to evaluate (the check reports the node as Error)."""


class OutsideRootError(ConfigError):
    """A request names a location outside the server's root (a project, uid, path or input)."""

    def __init__(self, field: str, value: str, root: str) -> None:
        self.field, self.value, self.root = field, value, root
        super().__init__(
            f"{field} {value!r} leads outside the server's artifact root {root!r}; "
            "use a path under that root"
        )


class ConflictError(ConfigError):
    """A request conflicts with what is stored (an update through a value that is no object)."""


class BodyTooLarge(MlflowletError, ValueError):
    """A request body went over the server's limit (answered with 413)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"request body is larger than the server's limit of {limit} bytes")


class BodyTimeout(MlflowletError, TimeoutError):
    """A client stopped sending its request body (answered with 408)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the request body did not arrive within {seconds:g}s")


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM arrived while a run, sweep or pipeline ran.

    A ``KeyboardInterrupt`` (not an ``MlflowletError``), so code that catches ``Exception`` lets
    it through, and code that handles Ctrl-C handles SIGTERM the same way.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        try:
            self.signame = signal.Signals(signum).name
        except ValueError:
            self.signame = f"signal {signum}"
        super().__init__(f"interrupted by {self.signame}")

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal (130 for SIGINT, 143 SIGTERM)."""
        return 128 + self.signum


class MlflowletWarning(UserWarning):
    """Root of every warning mlflowlet emits."""


class BareImageWarning(MlflowletWarning):
    """A step runs in a bare base image (``python:*``, ``alpine:*``...) that has no mlflowlet."""


class TrackingWarning(MlflowletWarning):
    """A compiled pipeline records nothing: no run DB reachable from its pods was given."""
