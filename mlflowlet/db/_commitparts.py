"""One commit of a run over HTTP, split into requests below the server's body limit.

A run's output may be as large as the log cap (64 MiB by default, the server's default body
limit too), so one commit can be over the limit. The log then goes in several requests, in
order, each a whole commit of the run record with the next part of the log (the first also
carries the artifact and metric rows): each part is one transaction on the server. When a part
after the first fails, :class:`~mlflowlet.errors.PartlyWrittenError` says how many log bytes
are stored, so the writer sends only the rest again: the log is stored once, in order.
"""

from __future__ import annotations

import base64
from typing import Any, Protocol

from ..errors import PartlyWrittenError, RecordTooLargeError, RunDBError
from ._json import dumps

DEFAULT_MAX_BODY = 64 * 1024 * 1024  # a server that does not say (server/_middleware.py)
SMALL_BODY = 256 * 1024  # below every server limit in use: sent without asking the limit
ENVELOPE = 4096  # room for the JSON around a record and its log part


class _Sender(Protocol):
    @property
    def max_body(self) -> int: ...

    @property
    def url(self) -> str: ...

    def send_commit(self, uid: str, body: bytes) -> None: ...


def commit_in_parts(
    db: _Sender, run: dict[str, Any], arts: list[Any], metrics: list[Any], log: bytes
) -> None:
    """Send one commit through ``db``, in as many requests as its body limit needs.

    Raises:
        RecordTooLargeError: the record with its rows is over the limit alone (nothing sent).
        PartlyWrittenError: a request after the first failed (``written`` log bytes stored).
    """
    rows = {"run": run, "artifacts": arts, "metrics": metrics}
    body = dumps({**rows, "log_b64": base64.b64encode(log).decode() if log else ""}).encode()
    uid = run["metadata"]["uid"]
    if len(body) <= SMALL_BODY or len(body) <= db.max_body:
        db.send_commit(uid, body)
        return
    limit = db.max_body - ENVELOPE
    fixed = len(dumps({**rows, "log_b64": ""}).encode())
    alone = len(dumps({"run": run, "artifacts": [], "metrics": [], "log_b64": ""}).encode())
    if fixed > limit or limit - alone < 4:
        name = run["metadata"].get("name", "")
        raise RecordTooLargeError(
            f"run {name!r} ({uid}): its record with {len(arts)} artifact and {len(metrics)} "
            f"metric rows is {fixed:,} bytes as JSON, over the {db.max_body:,}-byte request "
            f"limit of the mlflowlet server at {db.url}; store large values as artifacts "
            "(context.log_artifact) or raise the limit (mlflowlet server --max-body-mb)"
        )
    written, first = 0, True
    while first or written < len(log):
        room = (limit - (fixed if first else alone)) // 4 * 3  # base64: 4 characters per 3 bytes
        piece = log[written : written + room]
        part = rows if first else {"run": run, "artifacts": [], "metrics": []}
        data = dumps({**part, "log_b64": base64.b64encode(piece).decode()}).encode()
        try:
            db.send_commit(uid, data)
        except RunDBError as exc:
            if first:
                raise
            raise PartlyWrittenError(
                f"{exc} (after {written:,} of {len(log):,} log bytes, sent in parts below the "
                f"server's {db.max_body:,}-byte limit)",
                written,
            ) from None
        written, first = written + len(piece), False
