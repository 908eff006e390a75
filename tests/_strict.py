"""Strict CI: a test may skip only for a reason listed here.

Under ``MLFLOWLET_TEST_STRICT=1`` (set by ``.ci/run``) every skip whose reason matches none of the
patterns below fails the run: a missing real part (Chromium, PostgreSQL, SeaweedFS, Playwright,
schemathesis, Java for Spark, ...) is a broken test machine, not a passing test. What is listed
here cannot exist on the CI machine (no Kubernetes cluster, no KFP or Argo server, no network),
or is the other branch of a test that runs either way.
"""

from __future__ import annotations

import os
import re

#: reason pattern -> why that skip is allowed in strict CI
ALLOWED_SKIPS: dict[str, str] = {
    r"KUBECONFIG is not set": "no Kubernetes cluster can run here (no Docker, no k3s/kind)",
    r"ARGO_SERVER is not set": "no Argo server can run here (it needs a Kubernetes cluster)",
    r"KFP_HOST is not set": "no KFP backend can run here (it needs a Kubernetes cluster)",
    r"no Java runtime here: local Spark needs a JVM": "pyspark cannot run without a JVM",
    r"^Two commands: creates a \.venv": "the README's install commands need the network",
    r"^Quickstart: installs packages": "the README's install commands need the network",
    r"needs a KFP/Argo server": "no KFP or Argo server can run here",
    r"Run on Kubernetes: a synopsis": "a synopsis with placeholders, not a command",
    r"^not expressible yet: ": "a ported original (examples/ports, PORT.md) needs a construct "
    "mlflowlet lacks (issue #13); the skip names it until #13 adds it",
}


def strict() -> bool:
    """Return True when missing real parts must fail rather than skip."""
    return os.environ.get("MLFLOWLET_TEST_STRICT", "") not in ("", "0")


def allowed(reason: str) -> bool:
    """Return True when a skip with this reason is allowed in strict CI."""
    return any(re.search(pattern, reason) for pattern in ALLOWED_SKIPS)


def skip_reason(longrepr: object) -> str:
    """Return the reason text of a skipped report's ``longrepr``."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)
