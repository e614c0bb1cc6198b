"""How fronde's commands report bad input: one red `error:` line that is never hard-wrapped (a path broken over two
lines cannot be copied, and tests cannot find it), then exit status 2 from the caller. What a message quotes (a path,
a name, a model's output) is escaped: rich would take `[draft]` in `notes [draft].md` for markup and drop it."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape


def print_error(console: Console, message: object) -> None:
    if getattr(message, "echo", True):  # False: another rank's error, which rank 0 prints (fronde.train.agree)
        console.print(f"[red]error:[/red] {escape(str(message))}", highlight=False, soft_wrap=True)


def say_to(console: Console) -> Callable[[object], None]:
    """A stage's `say` on this console: its lines are text, so a file name or a recipe section in brackets
    (`notes [draft].md`, `[model]`) is printed as it is, not taken for rich markup and dropped (or, for `[/x]`,
    a crash). A rich Text (a speedrun heading) keeps its style."""
    return lambda line: console.print(line, markup=False)
