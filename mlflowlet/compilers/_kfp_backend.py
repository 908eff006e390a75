"""The oldest KFP backend that runs a compiled pipeline: stated in its YAML, checked at submit.

Every KFP v2 pipeline spec needs a 2.x backend. A construct a newer backend added raises the
minimum; each is listed with its source, so a pipeline is never submitted to a backend that
would refuse it at run time.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ConfigError

BASE = (2, 0, 0)
# construct -> (minimum backend, what it is, source)
CONSTRUCTS = {
    "collect": (
        (2, 4, 0),
        "a mapped step's results collected (dsl.Collected of a ParallelFor)",
        "backends before 2.4.0 refuse the loop's DAG outputs: kubeflow/pipelines#10035, "
        "fixed by #11196",
    ),
}


def _text(version: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in version)


def requirements(dag: Any) -> list[tuple[tuple[int, ...], str, str]]:
    """Return ``(minimum backend, construct, source)`` of each construct ``dag`` uses."""
    kinds = {e.kind for e in dag.edges}
    return [CONSTRUCTS[k] for k in sorted(CONSTRUCTS) if k in kinds]


def minimum(dag: Any) -> tuple[int, ...]:
    """Return the oldest KFP backend version that runs ``dag`` compiled."""
    return max([BASE, *(v for v, _w, _s in requirements(dag))])


def header(dag: Any) -> str:
    """Return the YAML header comment naming the minimum backend (empty for plain 2.x)."""
    lines = [
        f"# Minimum KFP backend: {_text(v)} for {what} ({source})"
        for v, what, source in requirements(dag)
    ]
    return "".join(f"{line}\n" for line in lines)


def check_backend(answer: dict[str, Any], dag: Any, host: str) -> None:
    """Refuse to submit ``dag`` to a backend older than it needs.

    ``answer`` is the KFP API's ``/apis/v2beta1/healthz`` reply, whose ``tag_name`` is the
    backend release (a development build without a release number is not checked).

    Raises:
        ConfigError: the backend's release is older than a construct of the pipeline needs.
    """
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", str(answer.get("tag_name") or ""))
    if not match:
        return
    have = tuple(int(p) for p in match.groups())
    for version, what, source in requirements(dag):
        if have < version:
            raise ConfigError(
                f"the KFP backend at {host} is {answer['tag_name']}; this pipeline has {what}, "
                f"which needs KFP {_text(version)} or newer ({source}): upgrade KFP, or submit "
                "to Argo (--target argo)"
            )
