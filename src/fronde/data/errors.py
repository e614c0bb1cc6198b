"""The one exception type the data layer raises for problems a user can fix.

It subclasses ValueError so generic callers still catch it; the CLI prints its message in red and
exits with code 2, without a traceback, because the message already says which file or field is
wrong and what to do about it.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


class DataError(ValueError):
    """A user-fixable problem with the corpus, the recipe or an output directory."""


def validation_message(e: ValidationError, show_input: bool = False, model: type[BaseModel] | None = None) -> str:
    """pydantic's first error as `field.path: what is wrong (got value)`; a whole-model check has no field path.
    With the `model` validated, a misspelt key gets the closest real one (`schedule.maxsteps: ... did you mean
    max_steps?`), else the section's keys."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    shown = f" (got {value!r})" if show_input and loc and not isinstance(value, dict) else ""
    if err["type"] == "extra_forbidden" and model is not None and err["loc"]:
        shown += _known_keys(model, err["loc"])
    return f"{loc}: {msg}{shown}" if loc else msg


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """`; did you mean X?` for the unknown key at the end of `loc`, or `; keys: ...` of its section."""
    section: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # an item of a list: its type was unwrapped with the list
        fields = getattr(section, "model_fields", {})
        if part not in fields:
            return ""
        section = _model_in(fields[part].annotation)
        if section is None:
            return ""
    keys = list(getattr(section, "model_fields", {}))
    close = difflib.get_close_matches(str(loc[-1]), keys, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]}?"
    return f"; keys: {', '.join(keys)}" if keys and len(keys) <= 16 else ""


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model in an annotation such as `X`, `X | None` or `list[X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, tuple):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
