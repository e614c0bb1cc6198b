"""Tool calling and reasoning in the model's own tokens, mapped to OpenAI's message fields.

The chat template writes a call as <|tool_call|>{"name": ..., "arguments": ...}<|/tool_call|> and reasoning as
<|think|>...<|/think|><|answer|>...<|/answer|> (fronde.data.chat). Parsing is by special-token ids, so no text
the model writes can be mistaken for a call. `tool_choice` is enforced on the prompt side: "required" and a named
function put the call's opening into the prompt, "none" bans the call token.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from fronde.data.tokenizer import Tokenizer


@dataclass
class AssistantTurn:
    content: str | None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def tool_choice_prefix(tok: Tokenizer, tool_choice: Any, tools: list[dict] | None) -> tuple[list[int], list[int]]:
    """(ids forced after the generation prompt, ids banned while sampling) for an OpenAI tool_choice."""
    if not tools or tool_choice in (None, "auto"):
        return [], []
    if tool_choice == "none":
        return [], [tok.special.tool_call]
    if tool_choice == "required":
        return [tok.special.tool_call], []
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        name = (tool_choice.get("function") or {}).get("name")
        names = [(t.get("function") or {}).get("name") for t in tools]
        if name not in names:
            raise ValueError(f"tool_choice names function {name!r}, which is not among tools {names}")
        return [tok.special.tool_call] + tok.encode('{"name": ' + json.dumps(name) + ', "arguments": '), []
    raise ValueError(f"tool_choice {tool_choice!r} is not 'auto', 'none', 'required' or a named function")


def parse_assistant(tok: Tokenizer, ids: list[int]) -> AssistantTurn:
    """Split generated ids (without the final <|end|>) into content, reasoning and tool calls."""
    sp = tok.special
    text_parts: list[list[int]] = [[]]
    reasoning: list[int] | None = None
    calls: list[list[int]] = []
    mode = "text"
    for t in ids:
        if t == sp.tool_call:
            mode = "call"
            calls.append([])
        elif t == sp.tool_call_end:
            mode = "text"
        elif t == sp.think:
            mode, reasoning = "think", []
        elif t == sp.think_end:
            mode = "text"
        elif t in (sp.answer, sp.answer_end, sp.end):
            continue
        elif mode == "call":
            calls[-1].append(t)
        elif mode == "think" and reasoning is not None:
            reasoning.append(t)
        else:
            text_parts[-1].append(t)
    turn = AssistantTurn(content=None, reasoning=tok.decode(reasoning) if reasoning is not None else None)
    leftovers = []
    for call_ids in calls:
        raw = tok.decode(call_ids)
        try:
            call = json.loads(raw)
            name, args = call["name"], call.get("arguments", {})
        except (json.JSONDecodeError, KeyError, TypeError):
            leftovers.append(raw)  # not a well-formed call: hand the text back rather than drop it
            continue
        turn.tool_calls.append({"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                                "function": {"name": str(name),
                                             "arguments": args if isinstance(args, str) else json.dumps(args)}})
    content = tok.decode(text_parts[0]) + "".join(leftovers)
    turn.content = content if content or not turn.tool_calls else None
    return turn
