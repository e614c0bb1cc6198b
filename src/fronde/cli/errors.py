"""How fronde's commands report bad input: one red `error:` line that is never hard-wrapped (a path broken over two
lines cannot be copied, and tests cannot find it), then exit status 2 from the caller."""

from __future__ import annotations

from rich.console import Console


def print_error(console: Console, message: object) -> None:
    if getattr(message, "echo", True):  # False: another rank's error, which rank 0 prints (fronde.train.agree)
        console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
