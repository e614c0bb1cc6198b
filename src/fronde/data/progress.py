"""Progress reporting for long stages: a no-op default and a rich progress bar for the CLI."""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text


class Reporter(Protocol):
    def start(self, stage: str, total: float | None = None) -> None: ...
    def advance(self, n: float = 1) -> None: ...
    def done(self) -> None: ...


class NullReporter:
    """Reports nothing (library use, tests)."""

    def start(self, stage: str, total: float | None = None) -> None:
        pass

    def advance(self, n: float = 1) -> None:
        pass

    def done(self) -> None:
        pass


class _CountColumn(MofNCompleteColumn):
    """done/total for stages that count something (with thousands separators: an export counts parameters);
    nothing for those that do not (e.g. BPE training)."""

    def render(self, task):  # type: ignore[no-untyped-def]
        if not task.fields.get("counted") or task.total is None:
            return Text("")
        return Text(f"{int(task.completed):,}/{int(task.total):,}", style="progress.download")


class RichReporter:
    """One rich progress bar per stage (a spinner when the total is unknown)."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description:<18}"), BarColumn(),
                                 _CountColumn(), TimeElapsedColumn(), console=console, transient=False)
        self.task = None

    def __enter__(self) -> "RichReporter":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, stage: str, total: float | None = None) -> None:
        self.task = self.progress.add_task(escape(stage), total=total, counted=total is not None)

    def advance(self, n: float = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def done(self) -> None:
        if self.task is not None:
            t = self.progress.tasks[self.task]
            done = t.completed if t.fields.get("counted") else 1  # a stage without a count: a full bar, no "0/0"
            self.progress.update(self.task, total=done, completed=done)
            self.task = None
