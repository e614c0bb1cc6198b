"""A tool's JSON schema and description, read off a plain Python function.

The model only ever sees the schema (OpenAI's `tools` entry), so it is derived from what the author already wrote:
type hints give the types, defaults and `Optional` make a parameter optional, the docstring's first paragraph is
the description and a Google-style `Args:` section gives each parameter's description. Anything that cannot be
said in JSON schema is refused with the function and parameter named, rather than guessed.
"""

from __future__ import annotations

import inspect
import json
import re
import types
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from fronde.tools.errors import ToolError

SUPPORTED = "str, int, float, bool, list[...], dict, Literal[...] or Optional[...]"
_PRIMITIVES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_SECTION = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
_ARG_SECTIONS = {"Args", "Arguments", "Parameters", "Params", "Keyword Args", "Keyword Arguments"}
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(first paragraph as one line, {parameter: description} from a Google-style `Args:` section)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line.strip()):
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    in_args, current, indent = False, "", -1
    for line in lines:
        stripped = line.strip()
        depth = len(line) - len(line.lstrip())
        if depth == 0 and _SECTION.match(stripped):
            in_args, current, indent = stripped[:-1].strip() in _ARG_SECTIONS, "", -1
            continue
        if not in_args or not stripped:
            continue
        if depth == 0:  # back to prose: the section ended
            in_args = False
            continue
        m = _ARG_LINE.match(stripped)
        if m and (indent < 0 or depth <= indent):
            indent, current = depth, m.group(1)
            params[current] = m.group(2).strip()
        elif current:
            params[current] = f"{params[current]} {stripped}".strip()
    return " ".join(summary), params


def _is_union(hint: Any) -> bool:
    return get_origin(hint) in (Union, types.UnionType)


def type_schema(hint: Any, where: str) -> dict[str, Any]:
    """The JSON schema of one type hint; `where` names the function and parameter in the error."""
    if hint in _PRIMITIVES:
        return {"type": _PRIMITIVES[hint]}
    origin, args = get_origin(hint), get_args(hint)
    if hint is list or origin is list:
        return {"type": "array", "items": type_schema(args[0], where)} if args else {"type": "array"}
    if hint is dict or origin is dict:
        if args and args[0] is not str:
            raise ToolError(f"{where}: JSON object keys are strings, so use dict[str, ...], not {hint!r}")
        return {"type": "object", "additionalProperties": type_schema(args[1], where)} if args else {"type": "object"}
    if origin is Literal:
        values = list(args)
        kinds = {_PRIMITIVES.get(type(v)) for v in values}
        if None in kinds:
            raise ToolError(f"{where}: Literal values must be str, int, float or bool, got {hint!r}")
        return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 else {"enum": values}
    if _is_union(hint):
        options = [a for a in args if a is not type(None)]
        schemas = [type_schema(a, where) for a in options]
        schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
        return _nullable(schema) if len(options) < len(args) else schema
    raise ToolError(f"{where}: unsupported type {hint!r}; use {SUPPORTED}")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` that also accepts null (what Optional[...] means to a caller that writes JSON)."""
    out = dict(schema)
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    if "anyOf" in out:
        out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    return out


def _json_default(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return value is not None


def function_schema(fn: Callable[..., Any], name: str) -> tuple[str, dict[str, Any]]:
    """(description, parameters schema) for `fn`, raising ToolError for anything JSON cannot express."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise ToolError(f"tool {name!r}: cannot read the signature of {fn!r} ({e})") from None
    try:
        hints = get_type_hints(fn)
    except Exception as e:  # noqa: BLE001 - unresolvable forward references and the like
        raise ToolError(f"tool {name!r}: cannot resolve the type hints of {fn!r} ({type(e).__name__}: {e})") from None
    description, docs = parse_docstring(inspect.getdoc(fn))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in sig.parameters.values():
        where = f"tool {name!r}, parameter {p.name!r}"
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise ToolError(f"{where}: tools take named arguments only, so *args, **kwargs and positional-only "
                            f"parameters are not supported")
        if p.name not in hints:
            raise ToolError(f"{where} has no type hint; annotate it with {SUPPORTED}")
        schema = type_schema(hints[p.name], where)
        if docs.get(p.name):
            schema["description"] = docs[p.name]
        if p.default is p.empty and not (_is_union(hints[p.name]) and type(None) in get_args(hints[p.name])):
            required.append(p.name)
        elif p.default is not p.empty and _json_default(p.default):
            schema["default"] = p.default
        properties[p.name] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        parameters["required"] = required
    return description, parameters
