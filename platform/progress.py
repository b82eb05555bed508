"""Progress bars for the operations a user waits on (rich), shown only where someone watches.

A bar is drawn on stderr when stderr is a terminal, ``NO_COLOR`` is unset and ``TERM`` is
not ``dumb``. Piped, redirected or under ``NO_COLOR``, a command prints exactly what it
printed without bars, so scripts and logs never see one. Every command decides through
:func:`shown`, so they all behave alike; a command reports to a :class:`Bar` whether or not
one is drawn, and the code path is the same either way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar

T = TypeVar("T")


def shown(stream: TextIO | None = None) -> bool:
    """Would a bar be drawn on ``stream`` (stderr by default)?"""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced by something without a tty
        return False


class Bar:
    """One task of a bar on the terminal, or nothing at all (the same calls either way)."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self._progress = progress
        self._task = task

    @property
    def drawn(self) -> bool:
        return self._progress is not None

    def advance(self, amount: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, amount)

    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, total=total, description=description)

    def track(self, items: Iterable[T]) -> Iterator[T]:
        """``items`` as they are, one step of the bar each."""
        for item in items:
            yield item
            self.advance()


@contextmanager
def progress_bar(label: str, total: float | None = None, *, unit: str = "items",
                 when: bool = True) -> Iterator[Bar]:
    """A bar for the block: ``unit`` "items" shows done/total and the elapsed time, "bytes"
    sizes, speed and time left. Nothing is drawn unless :func:`shown` and ``when`` (a
    command passes its own threshold there, e.g. only for large uploads)."""
    if not (when and shown()):
        yield Bar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    else:
        columns += [MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        yield Bar(progress, progress.add_task(label, total=total))
