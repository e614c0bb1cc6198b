"""Tools a model can call: a Tool is a function plus the JSON schema the model sees, a Toolbox runs calls.

The Toolbox is the boundary between text a model wrote and code that runs, so `Toolbox.call` never raises for
anything the model or the tool does: an unknown name, arguments that are not JSON or do not fit the schema, a tool
that raises, hangs or returns too much all become a ToolResult whose `content` starts with "error: " and says
what went wrong in words a model can act on (the agent loop sends it back as the tool's message).
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, overload

import jsonschema
from jsonschema.exceptions import best_match

from fronde.tools.errors import ToolError
from fronde.tools.invoke import Outcome, invoke, invoke_isolated
from fronde.tools.schema import function_schema

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts as a function name


@dataclass(frozen=True)
class Tool:
    """A callable the model may use. `parameters` is a JSON-schema object; `isolate` runs each call in a child
    process killed at `timeout_s` (tools that enforce their own limits set it to False and run inline).
    `concurrent`: an inline tool whose calls mostly wait (on a subprocess, on files) and share no state, so that
    the calls of many episodes may run side by side on threads (GRPO's rollouts, evaluation)."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    timeout_s: float = 10.0
    isolate: bool = True
    concurrent: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ToolError(f"tool name {self.name!r}: use 1 to 64 letters, digits, '_' or '-'")
        if not callable(self.fn):
            raise ToolError(f"tool {self.name!r}: fn is not callable ({self.fn!r})")
        if not isinstance(self.parameters, dict) or self.parameters.get("type") != "object":
            raise ToolError(f"tool {self.name!r}: parameters must be a JSON schema with \"type\": \"object\"")
        if not self.timeout_s > 0:
            raise ToolError(f"tool {self.name!r}: timeout_s must be > 0, got {self.timeout_s}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly (a decorated function stays usable from Python)."""
        return self.fn(*args, **kwargs)

    def schema(self) -> dict[str, Any]:
        """The OpenAI `tools` entry for this tool."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@overload
def tool(fn: Callable[..., Any], *, name: str | None = None, description: str | None = None,
         timeout_s: float = 10.0, isolate: bool = True, concurrent: bool = False) -> Tool: ...
@overload
def tool(fn: None = None, *, name: str | None = None, description: str | None = None,
         timeout_s: float = 10.0, isolate: bool = True, concurrent: bool = False
         ) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None,
         timeout_s: float = 10.0, isolate: bool = True, concurrent: bool = False
         ) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a Tool of a plain function: `@tool` or `@tool(timeout_s=2)`. The schema comes from the type hints,
    the description from the docstring's first paragraph, parameter descriptions from its `Args:` section."""

    def build(f: Callable[..., Any]) -> Tool:
        tool_name = name or getattr(f, "__name__", "")
        doc, parameters = function_schema(f, tool_name)
        return Tool(tool_name, description if description is not None else doc, parameters, f, timeout_s, isolate,
                    concurrent and not isolate)

    return build(fn) if fn is not None else build


@dataclass
class ToolResult:
    """One call's result. `content` goes back to the model: the result text, or "error: ..." when not ok."""

    name: str
    content: str
    ok: bool
    error: str | None = None  # None, "unknown_tool", "bad_arguments", "error" (the tool raised) or "timeout"
    seconds: float = 0.0
    truncated: bool = False  # the result was longer than the toolbox's max_chars (still ok)


class Toolbox:
    """The tools of one conversation, by name; `call` runs one call the model made."""

    def __init__(self, tools: Iterable[Tool] = (), max_chars: int = 4000) -> None:
        self.max_chars = max_chars
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, Any] = {}
        self._optional: dict[str, list[str]] = {}
        for t in tools:
            if not isinstance(t, Tool):
                raise ToolError(f"not a Tool: {t!r} (wrap functions with fronde.tools.tool)")
            if t.name in self._tools:
                raise ToolError(f"two tools are named {t.name!r}; tool names must be unique")
            cls = jsonschema.validators.validator_for(t.parameters)
            try:
                cls.check_schema(t.parameters)
            except jsonschema.SchemaError as e:
                raise ToolError(f"tool {t.name!r}: its parameters are not a valid JSON schema ({e.message})") from None
            self._tools[t.name] = t
            self._validators[t.name] = cls(t.parameters)
            self._optional[t.name] = _optional_without_default(t)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    @property
    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        """The OpenAI `tools` list (what a chat template renders into the system turn)."""
        return [t.schema() for t in self._tools.values()]

    def concurrent(self, name: str | None) -> bool:
        """Whether calls to `name` may run side by side on threads (see Tool.concurrent)."""
        t = self._tools.get(name) if isinstance(name, str) else None
        return t is not None and t.concurrent and not t.isolate

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def call(self, name: str, arguments: str | dict[str, Any] | None) -> ToolResult:
        """Run one call; `arguments` is the JSON text the model wrote (or an already parsed object)."""
        start = time.monotonic()
        t = self._tools.get(name) if isinstance(name, str) else None
        if t is None:
            available = ", ".join(self._tools) or "none"
            return _result(name, Outcome(False, f"error: unknown tool {name!r}; available: {available}",
                                         "unknown_tool"), start)
        kwargs, problem = self._arguments(name, arguments)
        if problem:
            return _result(name, Outcome(False, f"error: {problem}", "bad_arguments"), start)
        if t.isolate:
            outcome = invoke_isolated(name, t.fn, kwargs, self.max_chars, t.timeout_s)
        else:
            outcome = invoke(t.fn, kwargs, self.max_chars)
        return _result(name, outcome, start)

    def _arguments(self, name: str, arguments: str | dict[str, Any] | None) -> tuple[dict[str, Any], str]:
        """(keyword arguments, "") or ({}, what is wrong with them, worded for the model)."""
        if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
            args: Any = {}
        elif isinstance(arguments, str):
            try:
                args = json.loads(arguments)
            except json.JSONDecodeError as e:
                return {}, f"arguments are not valid JSON ({e})"
            except RecursionError:
                return {}, "arguments are nested too deeply"
        else:
            args = arguments
        if not isinstance(args, dict):
            return {}, f"arguments must be a JSON object, got {type(args).__name__} {_short(args)}"
        try:
            error = best_match(self._validators[name].iter_errors(args))
        except RecursionError:
            return {}, "arguments are nested too deeply"
        if error is not None:
            return {}, _explain(error, self._tools[name])
        kwargs = dict(args)
        for p in self._optional[name]:
            kwargs.setdefault(p, None)
        return kwargs, ""


def _result(name: str, outcome: Outcome, start: float) -> ToolResult:
    return ToolResult(name, outcome.content, outcome.ok, outcome.error, time.monotonic() - start, outcome.truncated)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _explain(error: jsonschema.ValidationError, t: Tool) -> str:
    """A schema violation in the terms of a function call: missing, unexpected or ill-typed arguments."""
    props = t.parameters.get("properties", {})
    expected = ", ".join(props) or "none"
    if error.validator == "required" and not error.absolute_path:
        missing = [p for p in t.parameters.get("required", []) if p not in error.instance]
        return f"missing required argument {missing[0]!r}" if missing else error.message
    if error.validator == "additionalProperties" and not error.absolute_path:
        extra = [k for k in error.instance if k not in props]
        return f"unexpected argument {', '.join(map(repr, extra))}; {t.name!r} takes: {expected}"
    where = ".".join(str(p) for p in error.absolute_path)
    message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
    return f"argument {where!r}: {message}" if where else message


def _optional_without_default(t: Tool) -> list[str]:
    """Parameters the schema lets the model leave out but the function has no default for (Optional[...] without
    `= None`): the Toolbox passes None for them instead of letting the call fail."""
    try:
        params = inspect.signature(t.fn).parameters.values()
    except (TypeError, ValueError):
        return []
    required = set(t.parameters.get("required", []))
    props = t.parameters.get("properties", {})
    return [p.name for p in params if p.default is p.empty and p.name in props and p.name not in required
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
