""":class:`PipelineRun`: what ``pipe.run(...)`` returns."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from ..errors import RunError
from ..model import RunObject

if TYPE_CHECKING:
    from ..db.base import RunDB


def step_states(run: RunObject) -> dict[str, dict[str, Any]]:
    """Return the ``status.steps`` table of a pipeline run (node name to uid, state, ...)."""
    extra = run.status.model_extra
    assert extra is not None  # RunStatus allows extra fields
    return extra.setdefault("steps", {})


class PipelineRun:
    """A local run of a pipeline: its own ``RunObject`` plus one per step.

    Attributes:
        run: the pipeline's ``RunObject`` (``spec.graph``: the DAG; ``status.steps``: per-step
            uid, state, duration, attempts, ``cached_from`` / ``reused_from``).
        steps: node name to the step's ``RunObject`` (filled as steps finish).
    """

    def __init__(self, run: RunObject, steps: dict[str, RunObject], db: RunDB) -> None:
        self.run, self.steps, self._db = run, steps, db
        self._thread: threading.Thread | None = None

    @property
    def uid(self) -> str:
        """The pipeline run's uid."""
        return self.run.uid

    @property
    def name(self) -> str:
        """The pipeline name."""
        return self.run.metadata.name

    @property
    def project(self) -> str:
        """The project."""
        return self.run.metadata.project

    @property
    def state(self) -> str:
        """``running``, then ``completed`` or ``error`` (``aborted`` on interrupt)."""
        return self.run.status.state

    @property
    def error(self) -> str:
        """The failed steps and their errors (empty when none failed)."""
        return self.run.status.error

    @property
    def metadata(self) -> Any:
        """The pipeline run's metadata (as on a ``RunObject``)."""
        return self.run.metadata

    @property
    def spec(self) -> Any:
        """The pipeline run's spec (``graph`` holds the DAG)."""
        return self.run.spec

    @property
    def status(self) -> Any:
        """The pipeline run's status (``steps`` holds each step's state)."""
        return self.run.status

    def to_dict(self) -> dict[str, Any]:
        """Return the pipeline run as a JSON-safe dict."""
        return self.run.to_dict()

    def to_yaml(self) -> str:
        """Return the pipeline run as YAML."""
        return self.run.to_yaml()

    @property
    def params(self) -> dict[str, Any]:
        """The pipeline parameters the run used."""
        return dict(self.run.spec.params)

    def wait(self, timeout: float | None = None, raise_on_error: bool = False) -> PipelineRun:
        """Block until the run ends (it already has, unless started with ``wait=False``).

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            RunError: the run ended in ``error`` and ``raise_on_error``.
        """
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"pipeline run {self.uid} still running after {timeout}s")
        if raise_on_error and self.state != "completed":
            raise RunError(
                f"pipeline {self.name!r} ({self.uid}) {self.state}: {self.error}", run=self.run
            )
        return self

    def lineage(
        self,
        upstream: bool = False,
        downstream: bool = False,
        run_uid: str | None = None,
        artifact_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Return the lineage rows of this run (one per data edge and item).

        With ``upstream`` / ``downstream`` and a ``run_uid`` or ``artifact_key``, walk the
        lineage graph from there instead (across pipelines).
        """
        if upstream or downstream:
            return self._db.list_lineage(
                run_uid=run_uid, artifact_key=artifact_key, upstream=upstream, downstream=downstream
            )
        rows = self._db.list_lineage(
            pipeline_uid=self.uid, run_uid=run_uid, artifact_key=artifact_key
        )
        return rows

    def to_rows(self) -> list[list[Any]]:
        """Return the step table: a header, then one row per step."""
        rows: list[list[Any]] = [["step", "state", "duration", "uid", "note", "results"]]
        for name, entry in step_states(self.run).items():
            run = self.steps.get(name)
            note = (
                "cached"
                if entry.get("cached_from")
                else "reused"
                if entry.get("reused_from")
                else entry.get("reason") or entry.get("error") or ""
            )
            if entry.get("attempts", 1) > 1:
                note = f"{entry['attempts']} attempts {note}".strip()
            duration = entry.get("duration")
            rows.append(
                [
                    name,
                    entry.get("state", ""),
                    f"{duration:.3f}s" if isinstance(duration, (int, float)) else "",
                    entry.get("uid", "")[:12],
                    note,
                    run.status.results if run is not None else {},
                ]
            )
        return rows

    def show(self, display: bool = True) -> str | None:
        """Print the step table (``display=False`` returns the text instead)."""
        rows = [[_cell(c) for c in row] for row in self.to_rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        head = f"pipeline {_cell(self.name, 200)} {self.uid} {self.state}"
        text = "\n".join([head, *lines])
        if not display:
            return text
        print(text)
        return None

    def _repr_html_(self) -> str:
        """Show the pipeline run in Jupyter: its state, params, results and DAG as inline SVG."""
        from .._html import pipeline_card

        return pipeline_card(self.run.to_dict(), getattr(self._db, "url", "") or "")

    def __repr__(self) -> str:
        return (
            f"<PipelineRun {self.name!r} uid={self.uid} state={self.state} steps={len(self.steps)}>"
        )


def _cell(value: Any, width: int = 60) -> str:
    from .._text import printable

    text = printable(value if isinstance(value, str) else json.dumps(value, default=str))
    return text if len(text) <= width else text[: width - 1] + "…"
