"""Progress of long command-line work (an import): a live bar on a terminal, plain lines
when piped, so a log or a CI job reads "rows, rate, rejected" without escape codes."""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

# Seconds between plain lines when piped (a terminal redraws continuously).
PLAIN_INTERVAL = float(os.environ.get("BROADCASTER_PROGRESS_INTERVAL", "5"))


class RowProgress:
    """``with RowProgress("import") as p: p.update(rows, rejected)``."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.last_line = self.started
        self.rows = self.rejected = 0
        self.live: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> RowProgress:
        if self.stream.isatty():
            self.live = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(bar_width=None),
                TextColumn("{task.completed:,} rows"),
                TextColumn("{task.fields[rate]:,.0f}/s"),
                TextColumn("{task.fields[rejected]:,} rejected"),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self.live.start()
            self.task = self.live.add_task(self.label, total=None, rate=0.0, rejected=0)
        return self

    def rate(self) -> float:
        return self.rows / max(time.monotonic() - self.started, 1e-6)

    def update(self, rows: int, rejected: int) -> None:
        """Rows read so far and how many of them were rejected."""
        self.rows, self.rejected = rows, rejected
        if self.live is not None and self.task is not None:
            self.live.update(self.task, completed=rows, rate=self.rate(), rejected=rejected)
            return
        now = time.monotonic()
        if now - self.last_line >= PLAIN_INTERVAL:
            self.last_line = now
            self._line()

    def _line(self, done: str = "") -> None:
        print(
            f"{self.label}: {self.rows:,} rows, {self.rate():,.0f}/s, "
            f"{self.rejected:,} rejected{done}",
            file=self.stream,
            flush=True,
        )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.live is not None:
            self.live.stop()
        elif kind is None:
            self._line(", done")
