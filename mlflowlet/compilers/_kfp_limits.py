"""What KFP v2 cannot carry: each refused at compile time, naming the construct and the fix.

KFP's ``PipelineSpec`` has no place for some constructs a local run and Argo carry; compiling
them anyway would run something else than the local run, so :func:`refuse_unsupported` raises
:class:`~mlflowlet.errors.CompileError` instead.
"""

from __future__ import annotations

from typing import Any

from ..errors import CompileError
from ._plan import cached


def refuse_unsupported(plan: Any) -> None:
    """Raise for the first construct of ``plan`` KFP v2 cannot carry exactly.

    Raises:
        CompileError: names the step, the construct and what to do instead.
    """
    for st in [*plan.steps, *([plan.exit_step] if plan.exit_step is not None else [])]:
        spec = st.node.spec
        if spec.cache_max_age is not None and cached(spec, plan.options):
            raise CompileError(
                f"step {st.name!r} ({spec.source}): cache=timedelta(seconds="
                f"{spec.cache_max_age:g}) is a cache max age, which KFP v2 cannot carry (its "
                "PipelineSpec caching options hold enableCache and cacheKey only); use "
                "cache=True, or target='argo' (memoize maxAge)"
            )
