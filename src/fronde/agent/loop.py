"""The agent loop: model -> tool calls -> results -> model, until a turn without calls (the final answer) or the
step limit.

Nothing the model writes stops the loop with an exception: a call that is not valid JSON, an unknown tool, bad
arguments, a tool that fails or hangs (killed at its limit by fronde.tools) all come back to the model as the tool's
result, text starting with `error:`, and the model gets another step to fix it. The step limit is the only way a
loop ends without an answer, and the result says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from fronde.agent.backends import Backend
from fronde.tools import Toolbox


@dataclass(frozen=True)
class AgentEvent:
    """What the transcript shows as it happens: text as it streams, each call, each result, each step."""

    kind: Literal["step", "reasoning", "content", "tool_call", "tool_result"]
    text: str
    name: str = ""
    ok: bool = True


@dataclass
class AgentResult:
    answer: str | None  # the final turn's content; None when the step limit ended the loop
    stop: Literal["answer", "max_steps", "length"]  # length: the final turn was cut by max_tokens
    steps: int
    tool_calls: int = 0
    tool_errors: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)  # the whole conversation, OpenAI-shaped


def run_agent(backend: Backend, task: str, toolbox: Toolbox, max_steps: int = 8, system: str | None = None,
              on_event: Callable[[AgentEvent], None] | None = None) -> AgentResult:
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    emit = on_event or (lambda _: None)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": task})
    result = AgentResult(None, "max_steps", 0, messages=messages)
    for step in range(1, max_steps + 1):
        result.steps = step
        emit(AgentEvent("step", str(step)))
        turn = backend.complete(messages, toolbox.schemas() or None, emit)
        msg: dict[str, Any] = {"role": "assistant", "content": turn.content or ""}
        if turn.reasoning:
            msg["reasoning_content"] = turn.reasoning
        if turn.tool_calls:
            msg["tool_calls"] = [{k: v for k, v in c.items() if k != "error"} for c in turn.tool_calls]
        messages.append(msg)
        if not turn.tool_calls:
            result.answer = turn.content or ""
            result.stop = "length" if turn.finish_reason == "length" else "answer"
            return result
        for call in turn.tool_calls:
            fn = call["function"]
            emit(AgentEvent("tool_call", fn["arguments"], name=fn["name"]))
            if call.get("error"):
                content, ok = f"error: {call['error']}", False
            else:
                res = toolbox.call(fn["name"], fn["arguments"])
                content, ok = res.content, res.ok
            result.tool_calls += 1
            result.tool_errors += not ok
            emit(AgentEvent("tool_result", content, name=fn["name"], ok=ok))
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
    return result
