"""The console every fronde command prints through.

Two things differ from a plain rich `Console`:

- A line of text is never hard-wrapped. rich breaks a long line at the terminal width, or at 80 columns off a
  terminal (a log file, `tee`, a Slurm job's output), and folds a long path over two lines: it can no longer be
  copied, and `grep` misses it. Text is soft-wrapped (the terminal folds it on screen, the log keeps one line), as
  errors always were (fronde.cli.errors). Tables and panels still fit the width.
- The width is read when printing, not when the console is made. rich reads `COLUMNS` once, in its constructor, and
  a command's console is made when its module is imported: a process that runs several commands (the tests, a
  notebook) kept the width of whichever came first.
- Off a terminal, without `COLUMNS`, the width is 160, not rich's 80: a run watched through its log (Slurm, nohup)
  printed its cost ledger squeezed into 80 columns, device names folded over five lines and the total of tokens
  cut to `3,580,2…`.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.text import Text

LOG_WIDTH = 160


class CliConsole(Console):
    def __init__(self, *, width: int | None = None, height: int | None = None, **kwargs: Any) -> None:
        super().__init__(width=width, height=height, **kwargs)
        self._width, self._height = width, height  # None: rich's size reads COLUMNS/LINES at each print

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and not self._environ.get("COLUMNS", "").isdigit():
            return ConsoleDimensions(LOG_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
        if soft_wrap is None and objects and all(isinstance(o, (str, Text)) for o in objects):
            soft_wrap = True
        super().print(*objects, soft_wrap=soft_wrap, **kwargs)
