"""Tool calling end to end: a tiny model trained (for real, on CPU, in seconds) to call a tool, served, and driven
by the official openai client through a full call -> result -> answer round trip; plus the parser on hand ids."""

from __future__ import annotations

import json

import openai
import pytest

from fronde.serve.app import ServerConfig
from fronde.serve.tools import parse_assistant, tool_choice_prefix
from tests.serve.test_server import _start
from tests.serve.tool_model import ASK, TOOLS


@pytest.fixture(scope="module")
def tool_server(tool_model):
    model_dir, tok = tool_model
    url, app, srv, thread = _start(ServerConfig(model_dir))
    yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0), tok
    srv.should_exit = True
    thread.join(timeout=10)


def test_tool_call_round_trip_with_the_openai_client(tool_server):
    client, _ = tool_server
    first = client.chat.completions.create(model="tool-model", messages=ASK, tools=TOOLS, temperature=0,
                                           max_tokens=40)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    history = ASK + [choice.message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id,
                                                                     "content": "sunny, 24C"}]
    second = client.chat.completions.create(model="tool-model", messages=history, tools=TOOLS, temperature=0,
                                            max_tokens=40)
    assert second.choices[0].message.content == "It is sunny in Paris."
    assert second.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(model="tool-model", messages=ASK, tools=TOOLS, temperature=0,
                                                 max_tokens=40, stream=True))
    streamed = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert streamed[0].function.name == "get_weather" and streamed[0].index == 0
    assert streamed[0].function.arguments == call.function.arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    two = list(client.chat.completions.create(model="tool-model", messages=ASK, tools=TOOLS, temperature=0,
                                              max_tokens=40, stream=True, n=2))  # n > 1 streams tool calls too
    for i in (0, 1):
        calls = [tc for c in two if c.choices and c.choices[0].index == i for tc in c.choices[0].delta.tool_calls or []]
        assert [tc.function.name for tc in calls] == ["get_weather"]


def test_tool_choice_none_bans_the_call(tool_server):
    client, _ = tool_server
    out = client.chat.completions.create(model="tool-model", messages=ASK, tools=TOOLS, tool_choice="none",
                                         temperature=0, max_tokens=10)
    assert not out.choices[0].message.tool_calls and out.choices[0].finish_reason != "tool_calls"


def test_parser_and_tool_choice_on_hand_written_ids(tool_server):
    _, tok = tool_server
    sp = tok.special
    ids = (tok.encode("Let me check.") + [sp.tool_call] + tok.encode('{"name": "get_weather", "arguments": '
                                                                     '{"city": "Paris"}}') + [sp.tool_call_end]
           + [sp.tool_call] + tok.encode("not json") + [sp.tool_call_end, sp.end])
    turn = parse_assistant(tok, ids)
    assert turn.content == "Let me check.not json"  # a malformed call comes back as text, not lost
    assert [c["function"]["name"] for c in turn.tool_calls] == ["get_weather"]
    assert json.loads(turn.tool_calls[0]["function"]["arguments"]) == {"city": "Paris"}
    think = parse_assistant(tok, [sp.think] + tok.encode("hmm") + [sp.think_end, sp.answer] + tok.encode("42")
                            + [sp.answer_end])
    assert (think.reasoning, think.content) == ("hmm", "42")
    assert tool_choice_prefix(tok, "required", TOOLS)[:2] == ([sp.tool_call], [])
    assert tool_choice_prefix(tok, "none", TOOLS) == ([], [sp.tool_call], None)
    assert tool_choice_prefix(tok, "auto", TOOLS) == ([], [], None)
    forced, _, grammar = tool_choice_prefix(tok, {"type": "function", "function": {"name": "get_weather"}}, TOOLS)
    assert forced == [sp.tool_call] and "get_weather" in grammar  # the name is in the grammar, not the prompt
    with pytest.raises(ValueError, match="not among tools"):
        tool_choice_prefix(tok, {"type": "function", "function": {"name": "nope"}}, TOOLS)
