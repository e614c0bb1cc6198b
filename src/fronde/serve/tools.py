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
from fronde.serve.text import TextStream


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


class TurnStream:
    """An assistant turn parsed as its tokens arrive: `push` returns the OpenAI delta each token completes
    (content, reasoning_content, or a whole tool call once its closing token is in), so streamed chunks and the
    final message agree by construction. Stop strings apply to the visible content."""

    def __init__(self, tok: Tokenizer, stops: list[str] | None = None, forced: list[int] | None = None) -> None:
        self.tok, self.sp = tok, tok.special
        self.content = TextStream(tok, stops or [])
        self.reasoning: TextStream | None = None
        self.tool_calls: list[dict[str, Any]] = []
        self.mode = "text"  # text | think | call
        self._call: list[int] = []
        for t in forced or []:  # the tool_choice prefix the prompt already holds: part of the turn, not re-sent
            self.push(t)

    @property
    def stopped(self) -> bool:
        return self.content.stopped

    def push(self, token: int) -> dict[str, Any]:
        sp = self.sp
        if self.stopped:
            return {}
        if self.mode == "call":
            if token == sp.tool_call_end:
                return self._close_call()
            self._call.append(token)
            return {}
        if token == sp.tool_call:
            self.mode, self._call = "call", []
            return {}
        if token == sp.think:
            self.mode, self.reasoning = "think", TextStream(self.tok, [])
            return {}
        if token == sp.think_end:
            self.mode = "text"
            return {"reasoning_content": self.reasoning.flush()} if self.reasoning else {}
        if token in (sp.answer, sp.answer_end, sp.end):
            return {}
        if self.mode == "think" and self.reasoning is not None:
            return _delta("reasoning_content", self.reasoning.push(token))
        return _delta("content", self.content.push(token))

    def finish(self) -> dict[str, Any]:
        """At the end of generation: held-back text, and a call the length limit cut before its closing token."""
        delta = self._close_call() if self.mode == "call" else {}
        if self.mode == "think" and self.reasoning is not None:
            delta |= _delta("reasoning_content", self.reasoning.flush())
        tail = self.content.flush()
        if tail:
            delta["content"] = delta.get("content", "") + tail
        return delta

    def _close_call(self) -> dict[str, Any]:
        self.mode = "text"
        raw = self.tok.decode(self._call)
        try:
            call = json.loads(raw)
            name, args = call["name"], call.get("arguments", {})
        except (json.JSONDecodeError, KeyError, TypeError):
            # not a well-formed call: hand the text back as content rather than drop it
            return _delta("content", "".join(self.content.push(t) for t in self._call))
        entry = {"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                 "function": {"name": str(name), "arguments": args if isinstance(args, str) else json.dumps(args)}}
        self.tool_calls.append(entry)
        return {"tool_calls": [{"index": len(self.tool_calls) - 1} | entry]}

    def turn(self) -> AssistantTurn:
        text = self.content.text
        reasoning = self.reasoning.text if self.reasoning is not None else None
        return AssistantTurn(content=text if text or not self.tool_calls else None, reasoning=reasoning,
                             tool_calls=self.tool_calls)


def _delta(key: str, text: str) -> dict[str, Any]:
    return {key: text} if text else {}


def parse_assistant(tok: Tokenizer, ids: list[int]) -> AssistantTurn:
    """Split generated ids (with or without the final <|end|>) into content, reasoning and tool calls."""
    stream = TurnStream(tok)
    for t in ids:
        stream.push(t)
    stream.finish()
    return stream.turn()
