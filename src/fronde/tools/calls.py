"""Reading a tool call the model wrote between `<|tool_call|>` and `<|/tool_call|>`.

The model writes `{"name": ..., "arguments": {...}}`. A small model does not always write valid JSON, and the
answer to that is not to crash or to drop the call: the call is kept with whatever could be read and an error
that goes back to the model as the tool's result (the agent loop, GRPO rollouts and evaluation all do this), or,
through the OpenAI API, a call whose `arguments` string is not valid JSON — OpenAI's own contract.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from fronde.data.tokenizer import Tokenizer

_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_ARGUMENTS = re.compile(r'"arguments"\s*:\s*', re.DOTALL)
CALL_SHAPE = '{"name": "<tool>", "arguments": {...}}'


@dataclass(frozen=True)
class ParsedCall:
    """One call as written. `error` is set when the text is not a well-formed call; `name`/`arguments` then hold
    what could be recovered (the name when it is readable, the raw arguments text)."""

    name: str | None
    arguments: str | dict[str, Any] | None
    raw: str
    error: str | None = None

    @property
    def arguments_json(self) -> str:
        """The arguments as the string OpenAI's `function.arguments` carries (verbatim when not valid JSON)."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments if self.arguments is not None else {}, ensure_ascii=False)


def parse_call_text(raw: str) -> ParsedCall:
    """The call in `raw` (the text between the call tokens)."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        name = _NAME.search(raw)
        args = _ARGUMENTS.search(raw)
        rest = raw[args.end():].rstrip() if args else None
        if rest is not None and rest.endswith("}"):  # the object's own closing brace
            rest = rest[:-1].rstrip()
        return ParsedCall(_string(name.group(1)) if name else None, rest, raw,
                          f"the tool call is not valid JSON ({e.msg} at character {e.pos}); write {CALL_SHAPE}")
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return ParsedCall(None, None, raw, f"a tool call must be a JSON object {CALL_SHAPE}")
    args = obj.get("arguments", {})
    if isinstance(args, str):  # arguments given as a JSON string, as OpenAI messages carry them
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return ParsedCall(obj["name"], args, raw, f"the arguments of {obj['name']!r} are not valid JSON")
    if not isinstance(args, dict):
        return ParsedCall(obj["name"], json.dumps(args), raw, f"the arguments of {obj['name']!r} must be an object")
    return ParsedCall(obj["name"], args, raw)


def _string(body: str) -> str:
    """A JSON string's body as text: a sampled name may hold a raw newline or a bad escape (`\\x`); it is read as
    written rather than failing the whole rollout."""
    try:
        return json.loads(f'"{body}"', strict=False)
    except json.JSONDecodeError:
        return body


def parse_calls(tok: Tokenizer, ids: list[int]) -> list[ParsedCall]:
    """Every closed call in a generated turn, in order (a call the length limit cut is not a call)."""
    sp = tok.special
    calls: list[ParsedCall] = []
    current: list[int] | None = None
    for t in ids:
        if t == sp.tool_call:
            current = []
        elif t == sp.tool_call_end and current is not None:
            calls.append(parse_call_text(tok.decode(current)))
            current = None
        elif current is not None:
            current.append(t)
    return calls
