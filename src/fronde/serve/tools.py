"""Tool calling and reasoning in the model's own tokens, mapped to OpenAI's message fields.

The chat template writes a call as <|tool_call|>{"name": ..., "arguments": ...}<|/tool_call|> and reasoning as
<|think|>...<|/think|><|answer|>...<|/answer|> (fronde.data.chat). Parsing is by special-token ids, so no text
the model writes can be mistaken for a call. `tool_choice` is enforced while sampling: "required" and a named
function put the call's opening token into the prompt and constrain what follows to one well-formed call of a
declared tool (fronde.infer.constrain.tool_call_grammar), as vLLM does; "none" bans the call token; "auto" leaves
the model free.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from fronde.data.tokenizer import Tokenizer
from fronde.infer.constrain import tool_call_grammar
from fronde.serve.text import TextStream
from fronde.tools.calls import parse_call_text


@dataclass
class AssistantTurn:
    content: str | None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def tool_choice_prefix(tok: Tokenizer, tool_choice: Any,
                       tools: list[dict] | None) -> tuple[list[int], list[int], str | None]:
    """(ids forced after the generation prompt, ids banned while sampling, grammar for the forced call's body) for
    an OpenAI tool_choice. Raises ValueError (GrammarError for a tool whose schema cannot be compiled)."""
    if not tools or tool_choice in (None, "auto"):
        return [], [], None
    if tool_choice == "none":
        return [], [tok.special.tool_call], None
    if tool_choice == "required":
        return [tok.special.tool_call], [], tool_call_grammar(tools, tok.special.tool_call_end)
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        name = (tool_choice.get("function") or {}).get("name")
        named = [t for t in tools if (t.get("function") or {}).get("name") == name]
        if not named:
            names = [(t.get("function") or {}).get("name") for t in tools]
            raise ValueError(f"tool_choice names function {name!r}, which is not among tools {names}")
        return [tok.special.tool_call], [], tool_call_grammar(named[:1], tok.special.tool_call_end)
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
        call = parse_call_text(self.tok.decode(self._call))
        if call.name is None:
            # no readable tool name: not a call; hand the text back as content rather than drop it
            return _delta("content", "".join(self.content.push(t) for t in self._call))
        # a named call whose arguments are not valid JSON is still a call (OpenAI's contract: `arguments` may not
        # parse, and the client's tool layer reports that to the model)
        entry = {"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                 "function": {"name": call.name, "arguments": call.arguments_json}}
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
