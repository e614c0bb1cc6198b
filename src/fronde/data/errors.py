"""The one exception type the data layer raises for problems a user can fix.

It subclasses ValueError so generic callers still catch it; the CLI prints its message in red and
exits with code 2, without a traceback, because the message already says which file or field is
wrong and what to do about it.
"""

from __future__ import annotations

from pydantic import ValidationError


class DataError(ValueError):
    """A user-fixable problem with the corpus, the recipe or an output directory."""


def validation_message(e: ValidationError, show_input: bool = False) -> str:
    """pydantic's first error as `field.path: what is wrong (got value)`; a whole-model check has no field path."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    shown = f" (got {value!r})" if show_input and loc and not isinstance(value, dict) else ""
    return f"{loc}: {msg}{shown}" if loc else msg
