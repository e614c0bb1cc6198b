"""The `choices` of a completion reply: an assistant message (chat) or text (completions), and OpenAI's logprobs
shapes for each, with the prompt put back in front for `echo`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fronde.data.tokenizer import Tokenizer
from fronde.infer.engine import TopLogprobs
from fronde.serve.text import TextOffsets, TextStream, text_offsets
from fronde.serve.tools import TurnStream


@dataclass
class Echo:
    """A completion's prompt put back before its reply (`echo`), with its tokens' logprobs when asked."""

    text: str
    ids: list[int]
    logprobs: list[tuple[float, TopLogprobs]] | None  # for ids[1:] (the first has none)


def choice(i: int, decoder: TurnStream | TextStream, finish: str, events, tok: Tokenizer,
           echo: Echo | None = None) -> dict[str, Any]:
    """One choice; `events` are its token events when logprobs were asked for, else empty."""
    if isinstance(decoder, TurnStream):
        turn = decoder.turn()
        message: dict[str, Any] = {"role": "assistant", "content": turn.content}
        if turn.reasoning is not None:
            message["reasoning_content"] = turn.reasoning
        if turn.tool_calls:
            message["tool_calls"] = turn.tool_calls
        return {"index": i, "message": message, "logprobs": chat_logprobs(tok, events) if events else None,
                "finish_reason": finish}
    head = echo.text if echo is not None else ""
    lp = completion_logprobs(tok, events, TextOffsets(tok, len(head))) if events else None
    if lp is not None and echo is not None and echo.logprobs is not None:
        lp = merge(echo_logprobs(tok, echo), lp)
    return {"index": i, "text": head + decoder.text, "logprobs": lp, "finish_reason": finish}


def chat_logprobs(tok: Tokenizer, events) -> dict[str, Any]:
    return {"content": [{"token": tok.decode([e.token]), "logprob": e.logprob,
                         "top_logprobs": [{"token": tok.decode([t]), "logprob": v} for t, v in e.top_logprobs]}
                        for e in events]}


def completion_logprobs(tok: Tokenizer, events, offsets: TextOffsets) -> dict[str, Any]:
    """OpenAI's completions logprobs for the generated tokens `events`: tokens, token_logprobs, top_logprobs and
    text_offset (into the choice's text; `offsets` has seen the tokens before these)."""
    ids = [e.token for e in events]
    return {"tokens": [tok.decode([t]) for t in ids], "token_logprobs": [e.logprob for e in events],
            "top_logprobs": [{tok.decode([t]): v for t, v in e.top_logprobs} for e in events],
            "text_offset": offsets.push(ids)}


def echo_logprobs(tok: Tokenizer, echo: Echo) -> dict[str, Any]:
    """The echoed prompt's tokens: the first has no logprob (nothing precedes it), as OpenAI's and vLLM's."""
    assert echo.logprobs is not None
    return {"tokens": [tok.decode([t]) for t in echo.ids],
            "token_logprobs": [None] + [v for v, _ in echo.logprobs],
            "top_logprobs": [None] + [{tok.decode([t]): v for t, v in top} for _, top in echo.logprobs],
            "text_offset": text_offsets(tok, echo.ids)}


def merge(a: dict[str, list], b: dict[str, list]) -> dict[str, list]:
    return {k: a[k] + b[k] for k in a}
