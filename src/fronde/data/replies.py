"""One text form for a chat reply, whichever way the model was reached, so verifiers see the same thing.

fronde models write `<|think|>reasoning<|/think|><|answer|>text<|/answer|>` (fronde.data.chat); an OpenAI-compatible
server hands the same turn back as `reasoning_content` + `content` (fronde.eval.replies). Both become

    <think>reasoning</think>
    <answer>text</answer>        (when the turn has reasoning)
    text                         (when it does not)

which every verifier of fronde.tasks reads. A fronde model's tokens are split the way fronde's server splits them
(reasoning is the last think block; answer/end markers are dropped; the text of tool-call tokens stays content
unless the server could parse it as a call), so the local and the endpoint evaluator score a greedy reply
identically, and a fronde teacher run by transformers (distillation) answers in the same form: decoding with
`skip_special_tokens=True` would glue its reasoning to its answer ("= 153" + "153").
"""


from __future__ import annotations

import json

from fronde.data.tokenizer import Tokenizer


def join_reply(content: str | None, reasoning: str | None = None, tool_calls: list[str] | None = None) -> str:
    """The canonical reply text; tool calls (JSON strings) follow as `<tool_call>...</tool_call>` blocks."""
    text = content or ""
    if reasoning:
        text = f"<think>{reasoning}</think>\n<answer>{text}</answer>"
    for call in tool_calls or []:
        text += f"\n<tool_call>{call}</tool_call>"
    return text


def fronde_reply(tok: Tokenizer, ids: list[int]) -> str:
    """The canonical text of a fronde assistant turn's generated ids (stop token included or not)."""
    sp = tok.special
    content: list[int] = []
    reasoning: list[int] | None = None
    call: list[int] = []
    calls: list[str] = []
    mode = "text"
    for t in ids:
        if mode == "call":
            if t == sp.tool_call_end:
                mode = "text"
                parsed = _parse_call(tok.decode(call))
                if parsed is None:
                    content.extend(call)  # not a well-formed call: its text stays in the reply
                else:
                    calls.append(parsed)
            else:
                call.append(t)
        elif t == sp.tool_call:
            mode, call = "call", []
        elif t == sp.think:
            mode, reasoning = "think", []
        elif t == sp.think_end:
            mode = "text"
        elif t in (sp.answer, sp.answer_end, sp.end, sp.eos):
            continue
        elif mode == "think" and reasoning is not None:
            reasoning.append(t)
        else:
            content.append(t)
    if mode == "call":  # cut by the token limit before its closing token
        parsed = _parse_call(tok.decode(call))
        if parsed is None:
            content.extend(call)
        else:
            calls.append(parsed)
    text = tok.decode(content, skip_special_tokens=True)
    thought = tok.decode(reasoning, skip_special_tokens=True) if reasoning is not None else None
    return join_reply(text, thought, calls)


def _parse_call(raw: str) -> str | None:
    """A tool call as compact JSON {"name", "arguments"}, or None when the text is not one."""
    try:
        call = json.loads(raw)
        name, args = call["name"], call.get("arguments", {})
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    return call_json(str(name), args if isinstance(args, str) else json.dumps(args))


def call_json(name: str, arguments: str) -> str:
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
