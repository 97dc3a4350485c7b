"""Progress for long work: a rich bar on a terminal, plain log lines otherwise (CI, files)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("videotune")


class Progress:
    """`with Progress("render", total=n) as p: ... p.advance()`."""

    def __init__(self, description: str, total: int, log_every_s: float = 10.0):
        self.description = description
        self.total = total
        self.done = 0
        self.log_every_s = log_every_s
        self._bar = None
        self._last_log = 0.0
        self._start = 0.0

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        else:
            log.info("%s: 0/%d", self.description, self.total)
        return self

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)
            return
        now = time.monotonic()
        if now - self._last_log >= self.log_every_s or self.done >= self.total:
            self._last_log = now
            log.info("%s: %d/%d (%.1f s)", self.description, self.done, self.total, now - self._start)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def track(items: Iterable[T], description: str, total: int) -> Iterator[T]:
    with Progress(description, total) as progress:
        for item in items:
            yield item
            progress.advance()
