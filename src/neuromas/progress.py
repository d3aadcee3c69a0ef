"""What a person watching a run sees: a live bar in a terminal, plain lines everywhere else.

In a terminal, rich draws a bar with the step's figures and an estimate of the time left. When
standard error is not a terminal (CI, `nohup`, a notebook, `> log 2>&1`) a redrawn bar is noise:
there we print one plain line per training step and one per evaluation, each flushed at once,
so a log read with `tail -f` says where the run is. `NEUROMAS_PROGRESS=plain|rich|off` overrides
the choice (the tests use it to see both forms).
"""

from __future__ import annotations

import os
import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


def mode(enabled: bool = True) -> str:
    """'rich' (a live bar), 'plain' (one line per update) or 'off'."""
    chosen = os.environ.get("NEUROMAS_PROGRESS", "").strip().lower()
    if not enabled or chosen == "off":
        return "off"
    if chosen in ("plain", "rich"):
        return chosen
    console = Console(stderr=True)
    return "rich" if console.is_terminal and not console.is_jupyter else "plain"


def clock(seconds: float) -> str:
    """12:34 or 1:02:03."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def say(line: str, enabled: bool = True) -> None:
    """One line to standard error (where the bars are), unless progress is off."""
    if mode(enabled) != "off":
        print(line, file=sys.stderr, flush=True)


class Progress:
    """Progress of `total` units (training steps, evaluated questions) under a label.

    `update(done, status)` moves it: a live bar in a terminal; elsewhere a plain line per call
    when `plain_lines` (training: one line per step, with the time left), none otherwise
    (evaluation: the caller prints its result as the one line). `transient` bars vanish when done.
    """

    def __init__(self, label: str, total: int, enabled: bool = True, completed: int = 0, plain_lines: bool = True,
                 transient: bool = False):
        self.label, self.total, self.plain_lines = label, total, plain_lines
        self.mode = mode(enabled)
        self.start_done, self.start_time = completed, time.perf_counter()
        self.bar = None
        if self.mode == "rich":
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("elapsed,"),
                       TimeRemainingColumn(), TextColumn("left"))
            self.bar = RichProgress(*columns, console=Console(stderr=True), transient=transient)
            # escaped: labels and statuses are ours or a user's names (`moa:widths=[2,2,1]`), not rich markup
            self.job = self.bar.add_task(escape(label), total=total, completed=completed, status="")

    def __enter__(self) -> Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def eta(self, done: int) -> float | None:
        """Seconds left at the mean pace of the units done in this process (None before the first)."""
        finished = done - self.start_done
        if finished <= 0:
            return None
        return (time.perf_counter() - self.start_time) / finished * (self.total - done)

    def update(self, done: int, status: str = "") -> None:
        if self.bar is not None:
            self.bar.update(self.job, completed=done, status=escape(status))
        elif self.mode == "plain" and self.plain_lines:
            left = self.eta(done)
            tail = f", {clock(left)} left" if left is not None and done < self.total else ""
            print(f"{self.label} {done}/{self.total}: {status}{tail}", file=sys.stderr, flush=True)
