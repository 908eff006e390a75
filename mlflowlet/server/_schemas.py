"""The REST API's request and response shapes, strictly typed, and the statuses each route returns.

Request bodies validate in pydantic's strict mode (``"5"`` is not an int, ``1`` is not a string):
what the OpenAPI document says a field is, it is. Responses are documented with the same models
(and written straight from the store, unvalidated, to stay fast).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints

from ..model import RUN_STATES, RunMetadata, RunObject, RunSpec, RunStatus

MAX_INT = 2**31 - 1
#: most label filters one query may carry
MAX_FILTERS = 100
#: default and largest page of a list endpoint
PAGE_DEFAULT, PAGE_MAX = 100, 10_000
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
DOTTED = r"^[^.]+(\.[^.]+)*$"
State = Literal["created", "pending", "running", "completed", "error", "aborted", "skipped"]
assert get_args(State) == RUN_STATES  # one list of states: model.py's

# built when defined, as before the run models' defer_build (issue 18): FastAPI builds a deferred
# body model inside its parameter's alias, which pydantic warns has no effect there
_STRICT = ConfigDict(strict=True, defer_build=False)


#: what Python's ``str.isspace`` (so ``str.strip``) calls whitespace, spelled out: ``\s`` differs
#: between regex engines (pydantic's Rust one, Python's, JSON Schema's ECMA-262)
WS = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _artifact_key_pattern() -> str:
    """Return the regex of exactly the keys ``artifacts._keys.validate_key`` accepts.

    One file name: no separator, control character or drive (``C:``); not blank, ``.`` or
    ``..`` once stripped. Written without look-arounds (neither pydantic's engine nor
    JSON Schema tools all have them): the stripped core is one char other than ``.``, two
    chars not both ``.``, or longer; a drive is refused only at the very start. The length limit
    (``_keys.MAX_NAME_BYTES`` UTF-8 bytes) is not in the pattern: the server checks it with
    ``validate_key``.
    """
    bad = r"/\\\x00-\x1f\x7f-\x9f"
    a, n, p = f"[^{bad}]", f"[^{bad}{WS}]", f"[^{bad}{WS}.]"
    space = r"[\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    core = f"(?:{p}|{p}{n}|\\.{p}|{n}{a}+{n})"
    first = (
        f"(?:{p}|[^{bad}{WS}.A-Za-z]{n}|[A-Za-z][^{bad}{WS}:]|\\.{p}"
        f"|[^{bad}{WS}A-Za-z]{a}+{n}|[A-Za-z][^{bad}:]{a}*{n})"
    )
    return f"^(?:{space}+{core}{space}*|{first}{space}*)$"


ARTIFACT_KEY = _artifact_key_pattern()
#: exactly the label filters ``db.base.parse_label_filters`` accepts: a non-blank key before the
#: first ``=`` (a ``!`` or ``~`` right before it is the operator's), the value verbatim after
LABEL_FILTER = (
    f"^(?:[^=]*[^={WS}][^=]*|(?:[^=]*[^={WS}!~]|[^=]*[^={WS}][^=]*[{WS}]"
    f"|[^=]*[^={WS}][^=]*[!~])=[\\s\\S]*)$"
)


class Error(BaseModel):
    """An error answer: what went wrong and how to fix it."""

    detail: str


class ValidationIssue(BaseModel):
    """One field that does not match the schema."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrors(BaseModel):
    """A request that does not match the schema (422)."""

    detail: list[ValidationIssue]


_WHY = {
    400: "bad request: malformed JSON, a body nested too deep, a value out of range, or a "
    "name or filter the run DB refuses",
    401: "missing or wrong token (a browser asking for HTML gets the login form)",
    404: "no such run, artifact, pipeline or file",
    408: "the client stalled while sending the body",
    409: "the request conflicts with what is stored",
    413: "the body is larger than the server's limit",
    416: "the range cannot be satisfied",
    422: "the request does not match this schema",
    500: "the run DB failed (I/O error, disk full)",
}


def statuses(*codes: int, body: bool = False) -> dict[int | str, dict[str, Any]]:
    """Return the ``responses=`` of a route: 400, 401, 422 and 500 always, plus ``codes``.

    Args:
        *codes: further statuses the route returns (404, 409, 416, ...).
        body: the route takes a request body (adds 408 and 413).
    """
    wanted = {400, 401, 422, 500, *codes, *((408, 413) if body else ())}
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted(wanted):
        model = ValidationErrors if code == 422 else Error
        entry: dict[str, Any] = {"model": model, "description": _WHY[code]}
        if code == 401:
            entry["content"] = {"text/html": {"schema": {"type": "string"}}}
        out[code] = entry
    return out


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _integral(value: Any) -> Any:
    """Take ``3.0`` as the integer it is (JSON Schema's ``integer``); ``3.5`` stays refused."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**63:
        return int(value)
    return value


#: an integer as JSON Schema means it: ``3`` or ``3.0``, never ``"3"``, ``true`` or ``3.5``
Int = Annotated[int, Strict(), BeforeValidator(_integral)]
Count = Annotated[int, Strict(), Ge(0), Le(MAX_INT), BeforeValidator(_integral)]


# request bodies ---------------------------------------------------------------------------------
class StrictRunMetadata(RunMetadata):
    """Run metadata as the API accepts it."""

    model_config = _STRICT
    iteration: Count = 0


class StrictRunSpec(RunSpec):
    """Run spec as the API accepts it."""

    model_config = _STRICT
    max_iterations: Int | None = None
    max_errors: Int | None = None
    parallel: Int | None = None
    seed: Int | None = None


class StrictRunStatus(RunStatus):
    """Run status as the API accepts it (``state`` one of the run states)."""

    model_config = _STRICT
    state: State = "created"
    exit_code: Int | None = None


class RunBody(RunObject):
    """A run: metadata, spec and status (unknown fields are kept)."""

    model_config = _STRICT
    metadata: StrictRunMetadata = Field(default_factory=StrictRunMetadata)
    spec: StrictRunSpec = Field(default_factory=StrictRunSpec)
    status: StrictRunStatus = Field(default_factory=StrictRunStatus)


class ArtifactRecord(BaseModel):
    """An artifact record as the run DB stores it (unknown fields kept)."""

    model_config = ConfigDict(extra="allow", strict=True, ser_json_inf_nan="constants")
    key: str | None = None
    kind: str | None = None
    uid: str | None = None
    uri: str | None = None
    hash: str | None = None
    size: Annotated[int, Strict(), Ge(0), Le(2**53), BeforeValidator(_integral)] | None = None
    format: str | None = None
    viewer: str | None = None
    labels: dict[str, str] | None = None
    tag: str | None = None
    producer: dict[str, Any] | None = None
    project: str | None = None
    tree: str | None = None
    iteration: Count | None = None
    updated: str | None = None
    extra: dict[str, Any] | None = None


class LineageEdge(BaseModel):
    """One lineage edge: an artifact flowing from a producer run's output to a consumer param."""

    model_config = ConfigDict(extra="forbid", strict=True)
    project: str | None = None
    pipeline_uid: str | None = None
    producer_uid: str | None = None
    producer_iter: Count | None = None
    output: str | None = None
    artifact_key: str | None = None
    artifact_uri: str | None = None
    artifact_hash: str | None = None
    consumer_uid: str | None = None
    consumer_param: str | None = None
    time: str | None = None


Step = Annotated[int, Strict(), Ge(-MAX_INT), Le(MAX_INT), BeforeValidator(_integral)]
MetricRow = Annotated[
    tuple[str, Step | None, float | None, float | None], BeforeValidator(_as_tuple)
]


class MetricRows(BaseModel):
    """Metric rows ``(key, step, value, time)``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    rows: list[MetricRow] = Field(default_factory=list)


class LineageEdges(BaseModel):
    """Lineage edges to store."""

    model_config = ConfigDict(extra="forbid", strict=True)
    edges: list[LineageEdge] = Field(default_factory=list)


class CommitBody(BaseModel):
    """A run with its new artifacts, metric rows and log chunk (base64), written at once."""

    model_config = ConfigDict(extra="forbid", strict=True)
    run: RunBody
    artifacts: list[ArtifactRecord] = Field(default_factory=list)
    metrics: list[MetricRow] = Field(default_factory=list)
    log_b64: Annotated[str, StringConstraints(pattern=BASE64)] = ""


DottedKey = Annotated[str, StringConstraints(pattern=DOTTED)]
Updates = dict[DottedKey, Any]


# responses --------------------------------------------------------------------------------------
class RunsPage(BaseModel):
    """One page of runs; ``next_offset`` is null on the last page."""

    runs: list[RunBody]
    next_offset: int | None = None


class ArtifactsPage(BaseModel):
    """One page of artifact records; ``next_offset`` is null on the last page."""

    artifacts: list[ArtifactRecord]
    next_offset: int | None = None


class Deleted(BaseModel):
    """How many records a delete removed."""

    deleted: int


class Tags(BaseModel):
    """Distinct artifact tags."""

    tags: list[str]


class MetricPoint(BaseModel):
    """One logged metric value."""

    key: str
    step: int | None
    value: float | None
    time: float | None


class Metrics(BaseModel):
    """A run's metric rows in logging order."""

    metrics: list[MetricPoint]


class StoredEdge(LineageEdge):
    """A lineage edge as stored."""

    model_config = ConfigDict(extra="allow")


class Edges(BaseModel):
    """One page of lineage edges; ``next_offset`` is null on the last page."""

    edges: list[StoredEdge]
    next_offset: int | None = None


class GraphNode(BaseModel):
    """A step run of a pipeline."""

    uid: str
    name: str
    project: str
    state: str
    start_time: str
    duration: float | None


class GraphEdge(BaseModel):
    """Data flowing between two step runs."""

    source: str
    target: str
    output: str
    artifact_key: str
    param: str


class PipelineGraph(BaseModel):
    """A pipeline run's DAG: the pipeline run (null if only steps exist), nodes and edges."""

    pipeline: RunBody | None
    nodes: list[GraphNode]
    edges: list[GraphEdge]


class Version(BaseModel):
    """Server version, API version, artifact root, store kind and body limit."""

    version: str
    api: Literal["v1"]
    artifact_root: str
    db: str
    auth: bool
    max_body: int = Field(description="the largest request body accepted, in bytes")


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"]
