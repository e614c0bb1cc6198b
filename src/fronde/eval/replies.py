"""The canonical reply text (fronde.data.replies) of a message from an OpenAI-compatible server."""

from __future__ import annotations

from typing import Any

from fronde.data.replies import call_json, join_reply


def openai_reply(message: Any) -> str:
    """The canonical text of an OpenAI chat message object (reasoning under `reasoning_content` or `reasoning`)."""
    extra = getattr(message, "model_extra", None) or {}
    reasoning = extra.get("reasoning_content") or extra.get("reasoning") or getattr(message, "reasoning_content", None)
    calls = [call_json(c.function.name, c.function.arguments) for c in (message.tool_calls or [])]
    return join_reply(message.content, reasoning, calls)
