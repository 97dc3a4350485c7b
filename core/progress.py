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
    """`with Progress("render", total=n) as p: ... p.advance()`.

    `status` is a short text shown after the counts (a training loss, say): in the bar's last
    column on a terminal, at the end of each plain line otherwise. Plain lines come at most every
    `log_every_s` seconds, and at the end; each gives done/total, elapsed time and, once
    something is done, the estimated time left.
    """

    def __init__(self, description: str, total: int, log_every_s: float = 10.0, done: int = 0):
        self.description = description
        self.total = total
        self.done = done  # already done before this run (a resumed one): not counted in the rate
        self._initial = done
        self.status = ""
        self.log_every_s = log_every_s
        self._bar = None
        self._last_log = 0.0
        self._start = 0.0

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        self._last_log = self._start
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}"), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, completed=self.done, status="")
        else:
            log.info("%s: %d/%d", self.description, self.done, self.total)
        return self

    def set_status(self, status: str) -> None:
        self.status = status
        if self._bar is not None:
            self._bar.update(self._task, status=status)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)
            return
        now = time.monotonic()
        if now - self._last_log >= self.log_every_s or self.done >= self.total:
            self._last_log = now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """The plain progress line: `train: 40/120 (12.0 s, 24 s left) loss 1.2345`."""
        elapsed = (now if now is not None else time.monotonic()) - self._start
        timing = f"{elapsed:.1f} s"
        if self._initial < self.done < self.total:
            timing += f", {elapsed / (self.done - self._initial) * (self.total - self.done):.0f} s left"
        status = f" {self.status}" if self.status else ""
        return f"{self.description}: {self.done}/{self.total} ({timing}){status}"

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def track(items: Iterable[T], description: str, total: int) -> Iterator[T]:
    with Progress(description, total) as progress:
        for item in items:
            yield item
            progress.advance()
