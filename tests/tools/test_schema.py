"""Tools from plain functions: JSON schemas from type hints, descriptions from docstrings, clear refusals."""

from __future__ import annotations

from typing import Any, Literal, Optional

import pytest

from fronde.data.errors import DataError
from fronde.tools import Tool, ToolError, tool
from fronde.tools.schema import parse_docstring


def test_schema_from_hints_and_docstring() -> None:
    def lookup(query: str, limit: int, ratio: float = 0.5, exact: bool = False, tags: list[str] = [],  # noqa: B006
               matrix: list[list[int]] | None = None, meta: dict = {},  # noqa: B006
               weights: dict[str, float] | None = None,
               mode: Literal["fast", "slow"] = "fast", level: Literal[1, 2, 3] = 1, note: str | None = None,
               either: int | str = 0) -> str:
        """Look something up in the team's index.

        Longer prose that is not part of the description.

        Args:
            query: what to look for; it can span
                two lines.
            limit (int): how many results.
            mode: speed.

        Returns:
            the results.
        """
        return ""

    t = tool(lookup)
    assert isinstance(t, Tool) and t.name == "lookup" and t.isolate and t.timeout_s == 10.0
    assert t.description == "Look something up in the team's index."
    p = t.parameters
    assert p["type"] == "object" and p["required"] == ["query", "limit"] and p["additionalProperties"] is False
    props = p["properties"]
    assert props["query"] == {"type": "string", "description": "what to look for; it can span two lines."}
    assert props["limit"] == {"type": "integer", "description": "how many results."}
    assert props["ratio"] == {"type": "number", "default": 0.5}
    assert props["exact"] == {"type": "boolean", "default": False}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "default": []}
    assert props["matrix"] == {"type": ["array", "null"], "items": {"type": "array", "items": {"type": "integer"}}}
    assert props["meta"] == {"type": "object", "default": {}}
    assert props["weights"] == {"type": ["object", "null"], "additionalProperties": {"type": "number"}}
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"], "description": "speed.", "default": "fast"}
    assert props["level"] == {"type": "integer", "enum": [1, 2, 3], "default": 1}
    assert props["note"] == {"type": ["string", "null"]}
    assert props["either"] == {"anyOf": [{"type": "integer"}, {"type": "string"}], "default": 0}
    assert t.schema() == {"type": "function", "function": {"name": "lookup", "description": t.description,
                                                           "parameters": p}}
    assert t("x", 1) == ""  # still callable from Python


def test_decorator_forms() -> None:
    @tool
    def bare(x: int) -> int:
        """Bare."""
        return x

    @tool(name="renamed", description="Custom.", timeout_s=2, isolate=False)
    def configured() -> str:
        return "hi"

    assert isinstance(bare, Tool) and bare.name == "bare" and bare(2) == 2
    assert configured.name == "renamed" and configured.description == "Custom." and configured.timeout_s == 2
    assert not configured.isolate and configured.parameters == {"type": "object", "properties": {},
                                                                 "additionalProperties": False}


def test_optional_without_default_is_not_required() -> None:
    def f(a: Optional[int], b: str | None) -> str:  # noqa: UP045
        return f"{a}{b}"

    assert "required" not in tool(f).parameters


def _no_hint(x):  # type: ignore[no-untyped-def]
    return x


def _any_hint(x: Any) -> None:
    pass


def _set_hint(x: set[int]) -> None:
    pass


def _int_keys(x: dict[int, str]) -> None:
    pass


def _varargs(*xs: int) -> None:
    pass


def _kwargs(**kw: int) -> None:
    pass


def _positional(x: int, /) -> None:
    pass


def _unresolvable(x: NoSuchType) -> None:  # noqa: F821
    pass


@pytest.mark.parametrize("fn, words", [
    (_no_hint, ["'_no_hint'", "'x'", "no type hint"]), (_any_hint, ["'x'", "unsupported type"]),
    (_set_hint, ["'x'", "unsupported type"]), (_int_keys, ["dict[str, ...]"]), (_varargs, ["*args"]),
    (_kwargs, ["*args"]), (_positional, ["positional-only"]), (_unresolvable, ["cannot resolve", "NoSuchType"]),
])
def test_unsupported_hints_are_named(fn: Any, words: list[str]) -> None:
    with pytest.raises(ToolError) as info:
        tool(fn)
    assert isinstance(info.value, DataError)  # the CLI prints it without a traceback
    for w in words:
        assert w in str(info.value)


def test_bad_tool_definitions() -> None:
    with pytest.raises(ToolError, match="letters, digits"):
        Tool("has space", "", {"type": "object"}, print)
    with pytest.raises(ToolError, match="not callable"):
        Tool("x", "", {"type": "object"}, "print")  # type: ignore[arg-type]
    with pytest.raises(ToolError, match="type"):
        Tool("x", "", {"type": "string"}, print)
    with pytest.raises(ToolError, match="timeout_s"):
        Tool("x", "", {"type": "object"}, print, timeout_s=0)


def test_parse_docstring() -> None:
    assert parse_docstring(None) == ("", {})
    assert parse_docstring("One line.") == ("One line.", {})
    summary, params = parse_docstring("""Two lines
    of summary.

    Parameters:
        a: first.
        *rest: ignored style.

    Raises:
        ValueError: not a parameter.
    """)
    assert summary == "Two lines of summary." and params == {"a": "first.", "rest": "ignored style."}
