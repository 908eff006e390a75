"""Where compiled steps record: a run DB and an artifact store the pods can reach.

A compiled step runs in a pod: a run DB path or an artifact directory of the machine that
compiled the pipeline is a path in the pod's own filesystem, thrown away with the pod. So a
tracked pipeline names a run DB by URL (a ``mlflowlet server``, or PostgreSQL) and an artifact
store by URL (``s3://...``); its API token reaches the pods as a Kubernetes secret reference,
never a value. Compiling without a run DB says that nothing will be recorded (opt out with
``tracking=False``, ``--no-tracking``); submitting without one is refused.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import CompileError, ConfigError, TrackingWarning

TOKEN_ENV = "MLFLOWLET_API_TOKEN"
ARTIFACT_ENV = "MLFLOWLET_ARTIFACT_PATH"
_LOCAL_SCHEMES = ("sqlite", "file")


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def check_tracking(
    dbpath: str, artifact_path: str, token_secret: tuple[str, str] | None, tracking: bool
) -> None:
    """Refuse a run DB or artifact path pods cannot reach (see :func:`warn_untracked`).

    Raises:
        CompileError: a local ``dbpath`` / ``artifact_path``, a server DB without an artifact
            store or without its token's secret, ``tracking=False`` with a run DB, or a token
            secret without a server DB.
    """
    _no_credentials(dbpath, "dbpath")
    _no_credentials(artifact_path, "artifact_path")
    if not tracking:
        if dbpath or artifact_path or token_secret:
            raise CompileError(
                "tracking=False (--no-tracking) records nothing: drop dbpath, artifact_path "
                "and token_secret, or keep tracking"
            )
        return
    if not dbpath:
        if token_secret:
            raise CompileError("token_secret is the run DB server's token: give dbpath too")
        return
    if _scheme(dbpath) in ("", *_LOCAL_SCHEMES):
        raise CompileError(
            f"dbpath={dbpath!r} is a file on this machine, which the pods cannot reach: give the "
            "URL of a `mlflowlet server` reachable from them (http://mlflowlet.<namespace>"
            ".svc:8080) or a postgresql:// URL"
        )
    if not artifact_path or _scheme(artifact_path) in ("", *_LOCAL_SCHEMES):
        what = (
            f"artifact_path={artifact_path!r} is a pod-local path"
            if artifact_path
            else ("no artifact_path")
        )
        raise CompileError(
            f"{what}: artifacts logged in a pod would stay in its own filesystem and the run DB "
            "would record a path no one can read; give artifact_path='s3://bucket/prefix' (a "
            "store the pods and the readers share)"
        )
    if not token_secret and _scheme(dbpath) in ("http", "https"):
        raise CompileError(
            f"dbpath={dbpath!r} is a mlflowlet server, which serves other hosts only with an API "
            "token: give token_secret='secret-name:key' (--token-secret), the Kubernetes Secret "
            "holding its MLFLOWLET_API_TOKEN, so the pods can record"
        )
    if token_secret and _scheme(dbpath) not in ("http", "https"):
        raise CompileError(f"token_secret is a mlflowlet server's token; dbpath={dbpath!r} is none")


def _no_credentials(url: str, what: str) -> None:
    """Refuse ``user:secret@`` in a URL: the compiled YAML would hold the secret."""
    from ..datastore._urls import check_no_credentials

    try:
        check_no_credentials(url, what)
    except ConfigError:
        raise CompileError(
            f"{what}: refused a URL with credentials in it (user:secret@ before the host): the "
            "compiled YAML would hold them; remove them and pass them as Kubernetes secret "
            "references, e.g. secrets={'PGPASSWORD': 'pg-creds:password'} or "
            "{'AWS_SECRET_ACCESS_KEY': 's3-creds:secret'}"
        ) from None


def warn_untracked(options: Any) -> None:
    """Warn that the compiled steps record nothing (no run DB given, tracking not turned off)."""
    if options.tracking and not options.dbpath:
        warnings.warn(
            "nothing the compiled steps do will be recorded: no run DB reachable from the pods; "
            "give dbpath='http://<mlflowlet server>' (--dbpath) and artifact_path='s3://...', "
            "or tracking=False (--no-tracking) to compile an untracked pipeline",
            TrackingWarning,
            stacklevel=4,
        )


def secret_ref(value: Any, where: str) -> tuple[str, str] | None:
    """Return ``'secret:key'`` (or ``(secret, key)``) as a pair, None when not given."""
    if not value:
        return None
    pair = tuple(value.partition(":")[::2]) if isinstance(value, str) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(pair):
        raise CompileError(
            f"{where}={value!r}: give 'secret-name:key' (a Kubernetes secret reference)"
        )
    return str(pair[0]), str(pair[1])


def require_tracking(options: dict[str, Any]) -> None:
    """Refuse to submit a pipeline that would record nothing, unless asked to.

    Raises:
        ConfigError: no ``dbpath`` and tracking not turned off.
    """
    if options.get("tracking", True) and not options.get("dbpath"):
        raise ConfigError(
            "submit needs a run DB the pods can reach, or nothing is recorded: give "
            "dbpath='http://<mlflowlet server>' (--dbpath) and artifact_path='s3://...' "
            "(--artifact-path), or tracking=False (--no-tracking)"
        )
