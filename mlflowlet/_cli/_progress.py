"""Progress of a hyper-parameter sweep: one redrawn line on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..db.base import RunDB


class IterationProgress:
    """Counts finished iterations (done/total, failures) and the best result so far.

    Args:
        total: the number of iterations expected.
        selector: ``'max.accuracy'`` / ``'min.loss'``, or empty for no best.
        stream: where to write (default: ``sys.stdout`` at each write).
    """

    def __init__(self, total: int, selector: str = "", stream: Any = None) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self._stream = stream
        from ..hyper import Best

        self._best = Best(selector) if selector else None  # the sweep's own rule, so they agree
        self._drawn = False

    @property
    def best(self) -> tuple[int, float] | None:
        """The best completed iteration so far and its value, or None."""
        best = self._best
        return None if best is None or best.iteration is None else (best.iteration, best.value)

    @classmethod
    def for_task(cls, task: Any) -> IterationProgress:
        """Build from a task's hyper-parameters or param file (expanded once to count them)."""
        from ..hyper import SweepOptions

        return cls(len(SweepOptions.of(task.spec).expand()), task.spec.selector)

    @property
    def stream(self) -> Any:
        """The output stream."""
        return self._stream if self._stream is not None else sys.stdout

    def attach(self, runtime: Any) -> None:
        """Observe ``runtime``'s finished iterations (wraps its ``_execute_many``)."""
        inner = runtime._execute_many

        def observed(runs: Any, handler: Any, db: RunDB, parallel: int) -> Any:
            for child in inner(runs, handler, db, parallel):
                self.update(child)
                yield child

        runtime._execute_many = observed

    def update(self, child: Any) -> None:
        """Count one finished iteration and show the new state."""
        self.done += 1
        state = child.status.state
        if state != "completed":
            self.failed += 1
        elif self._best is not None:  # only a completed iteration can be the best, as selected
            self._best.add(child.metadata.iteration, child.status.results)
        self._show(child.metadata.iteration, state)

    def _text(self) -> str:
        text = f"{self.done}/{self.total} iterations done"
        if self.failed:
            text += f", {self.failed} failed"
        best = self._best
        if best is not None and best.iteration is not None:
            text += f"; best {best.key}={best.value:g} (iteration {best.iteration})"
        return text

    def _show(self, iteration: int, state: str) -> None:
        out = self.stream
        try:
            if _is_tty(out):
                out.write("\r\x1b[K" + self._text())
                self._drawn = True
            else:
                out.write(f"iteration {iteration} {state}: {self._text()}\n")
            out.flush()
        except (OSError, ValueError):  # a closed terminal must not stop the sweep
            pass

    def close(self) -> None:
        """End the redrawn line."""
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False


def _is_tty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty else False
    except (OSError, ValueError):
        return False
