"""Progress bars and status messages (rich, on stderr).

``progress(total, description)`` is a context manager yielding an object with
``advance(n=1, **fields)``; extra fields (``tokens_per_s`` ...) show in the bar. Bars are
disabled when ``THRESHER_PROGRESS=0`` or stderr is not a terminal and ``CI`` is set.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)


def info(message: str) -> None:
    """Print a status line on stderr (secrets redacted: :func:`thresher.redact.redact`)."""
    from thresher.redact import redact

    console.print(redact(message), markup=False)


def _enabled() -> bool:
    env = os.environ.get("THRESHER_PROGRESS")
    if env is not None:
        return env not in ("0", "false", "no")
    return sys.stderr.isatty()


class _Bar:
    def __init__(self, prog: Any, task: Any):
        self._prog = prog
        self._task = task

    def advance(self, n: float = 1, **fields: Any) -> None:
        if self._prog is not None:
            self._prog.update(self._task, advance=n, **fields)

    def update(self, **fields: Any) -> None:
        if self._prog is not None:
            self._prog.update(self._task, **fields)


@contextlib.contextmanager
def progress(total: float | None, description: str, *, unit: str = "rows",
             extra: str | None = None, fields: dict[str, Any] | None = None) -> Iterator[_Bar]:
    """A rich progress bar with count, rate and ETA; ``extra`` is a format string over the
    task's fields, e.g. ``"{task.fields[tok_s]:.0f} tok/s"``; ``fields`` their initial values."""
    if not _enabled():
        yield _Bar(None, None)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cols: list[Any] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    if extra:
        cols.append(TextColumn(extra))
    with Progress(*cols, console=console, transient=False) as prog:
        task = prog.add_task(description, total=total, **{"tok_s": 0.0, **(fields or {})})
        yield _Bar(prog, task)


@contextlib.contextmanager
def quiet_bar(total: float | None = None, description: str = "", **_: Any) -> Iterator[_Bar]:
    """A bar that shows nothing (same signature as ``progress``): for non-main processes."""
    yield _Bar(None, None)
