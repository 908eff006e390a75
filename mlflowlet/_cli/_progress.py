"""Progress of a hyper-parameter sweep: one redrawn line on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Any


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
        self._direction, self._key = "", ""
        if selector:
            from ..hyper import parse_selector

            self._direction, self._key = parse_selector(selector)
        self.best: tuple[int, float] | None = None
        self._drawn = False

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

        def observed(runs: Any, handler: Any, db: Any, parallel: int) -> Any:
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
        value = child.status.results.get(self._key) if self._key else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            it = child.metadata.iteration
            better = (
                self.best is None
                or (value < self.best[1] if self._direction == "min" else value > self.best[1])
                or (value == self.best[1] and it < self.best[0])
            )  # ties: the lowest, as selected
            if better:
                self.best = (child.metadata.iteration, value)
        self._show(child.metadata.iteration, state)

    def _text(self) -> str:
        text = f"{self.done}/{self.total} iterations done"
        if self.failed:
            text += f", {self.failed} failed"
        if self.best is not None:
            text += f"; best {self._key}={self.best[1]:g} (iteration {self.best[0]})"
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
