"""OpenAI's Responses API on a real server, driven by the official openai client: text and reasoning items, the
streamed events (through the client's own stream accumulator), previous_response_id, retrieval, a function-call
round trip with the tiny model trained to call a tool, and what is refused."""

from __future__ import annotations

import json

import openai
import pytest

from fronde.serve.app import ServerConfig
from tests.serve.test_server import KEY, _start, model_dir  # noqa: F401 - the same tiny served model
from tests.serve.tool_model import ASK, TOOLS


OTHER_KEY = "sk-other-team"


@pytest.fixture(scope="module")
def served_url(model_dir):  # noqa: F811
    url, _, srv, thread = _start(ServerConfig(model_dir, api_keys=(KEY, OTHER_KEY), max_batch=4))
    yield url
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def client(served_url, model_dir):  # noqa: F811
    return openai.OpenAI(base_url=served_url + "/v1", api_key=KEY, max_retries=0), model_dir.name


def test_a_stored_response_is_visible_to_its_own_key_only(client, served_url):
    """Two teams on one server: one's conversation must not be readable, nor continued, with the other's key."""
    c, name = client
    mine = c.responses.create(model=name, input="The quick brown fox", max_output_tokens=4)
    other = openai.OpenAI(base_url=served_url + "/v1", api_key=OTHER_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model=name, input="go on", previous_response_id=mine.id, max_output_tokens=4)
    assert c.responses.retrieve(mine.id).id == mine.id


def test_a_response_is_the_chat_reply_as_output_items(client):
    c, name = client
    chat = c.chat.completions.create(model=name, messages=[{"role": "system", "content": "Be terse."},
                                                          {"role": "user", "content": "The quick brown fox"}],
                                     max_tokens=12, temperature=0)
    r = c.responses.create(model=name, instructions="Be terse.", input="The quick brown fox", max_output_tokens=12,
                           temperature=0)
    message = chat.choices[0].message
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.output_text == (message.content or "")
    reasoning = [o for o in r.output if o.type == "reasoning"]
    assert [o.content[0].text for o in reasoning] == ([message.reasoning_content]
                                                      if getattr(message, "reasoning_content", None) else [])
    assert r.usage.input_tokens == chat.usage.prompt_tokens and r.usage.output_tokens == chat.usage.completion_tokens
    assert r.status == ("incomplete" if chat.choices[0].finish_reason == "length" else "completed")
    assert c.responses.retrieve(r.id).output_text == r.output_text


def test_the_stream_accumulates_to_the_same_response(client):
    c, name = client
    kw = dict(model=name, input="def f(x):", max_output_tokens=16, temperature=0)
    whole = c.responses.create(**kw)
    with c.responses.stream(**kw) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_response()
    assert final.output_text == whole.output_text and [o.type for o in final.output] == [o.type for o in whole.output]
    assert events[:2] == ["response.created", "response.in_progress"]
    assert events[-1] == "response.completed" and final.status == whole.status
    assert events.count("response.output_item.added") == events.count("response.output_item.done") == len(
        final.output)
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert {o.status for o in final.output} == {"completed"}  # every item closed, reasoning included


def test_previous_response_id_continues_the_conversation(client):
    c, name = client
    first = c.responses.create(model=name, input="The quick brown fox", max_output_tokens=8, temperature=0)
    second = c.responses.create(model=name, input="jumps over", previous_response_id=first.id, max_output_tokens=8,
                                temperature=0)
    assert second.previous_response_id == first.id
    alone = c.responses.create(model=name, input="jumps over", max_output_tokens=8, temperature=0)
    assert second.usage.input_tokens > alone.usage.input_tokens + 3  # the first turn was sent too
    with pytest.raises(openai.NotFoundError, match="not found"):
        c.responses.create(model=name, input="x", previous_response_id="resp_nope")
    unstored = c.responses.create(model=name, input="x", max_output_tokens=2, store=False)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(unstored.id)


def test_developer_messages_are_system_messages(client):
    c, name = client
    kw = dict(model=name, max_output_tokens=6, temperature=0)
    dev = c.responses.create(input=[{"role": "developer", "content": "Be terse."},
                                    {"role": "user", "content": [{"type": "input_text", "text": "fox?"}]}], **kw)
    system = c.responses.create(instructions="Be terse.", input="fox?", **kw)
    assert dev.output_text == system.output_text and dev.usage.input_tokens == system.usage.input_tokens


def test_unsupported_input_is_refused_by_name(client):
    c, name = client
    with pytest.raises(openai.BadRequestError, match="input_image"):
        c.responses.create(model=name, input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}])
    with pytest.raises(openai.BadRequestError, match="function tools only"):
        c.responses.create(model=name, input="x", tools=[{"type": "web_search"}])


@pytest.fixture(scope="module")
def tool_client(tool_model):
    tool_dir, _ = tool_model
    url, _, srv, thread = _start(ServerConfig(tool_dir))
    yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    srv.should_exit = True
    thread.join(timeout=10)


def test_a_function_call_round_trip(tool_client):
    """The agent loop of OpenAI's SDKs: a function_call item, its output sent back as function_call_output with
    previous_response_id, then the answer; streamed, the call arrives as its own item."""
    tools = [{"type": "function", "name": t["function"]["name"], "description": t["function"]["description"],
              "parameters": t["function"]["parameters"]} for t in TOOLS]
    first = tool_client.responses.create(model="tool-model", input=ASK[0]["content"], tools=tools, temperature=0,
                                         max_output_tokens=40)
    (call,) = [o for o in first.output if o.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"} and call.call_id
    second = tool_client.responses.create(
        model="tool-model", previous_response_id=first.id, tools=tools, temperature=0, max_output_tokens=40,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24C"}])
    assert second.output_text == "It is sunny in Paris."
    # the same conversation sent in full (no stored state) gives the same answer
    stateless = tool_client.responses.create(
        model="tool-model", tools=tools, temperature=0, max_output_tokens=40, store=False,
        input=[{"role": "user", "content": ASK[0]["content"]},
               {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24C"}])
    assert stateless.output_text == second.output_text
    with tool_client.responses.stream(model="tool-model", input=ASK[0]["content"], tools=tools, temperature=0,
                                      max_output_tokens=40, tool_choice="required") as stream:
        events = [e for e in stream]
        final = stream.get_final_response()
    assert [o.type for o in final.output if o.type == "function_call"] == ["function_call"]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments) == {"city": "Paris"}


def test_streamed_items_each_close_as_completed():
    """The chat stream's reasoning, content and tool-call deltas become items that all end "completed" (a streamed
    reasoning item once stayed "in_progress" in the final response)."""
    import asyncio

    from fronde.serve.protocol import ResponsesRequest
    from fronde.serve.responses import ResponseBuilder, _events

    def sse(delta=None, finish=None, usage=None):
        body = {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]} if usage is None else \
            {"choices": [], "usage": usage}
        return "data: " + json.dumps(body) + "\n\n"

    async def chunks():
        for c in [sse({"reasoning_content": "think"}), sse({"reasoning_content": "ing"}), sse({"content": "4"}),
                  sse({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                       "function": {"name": "f", "arguments": "{}"}}]}, finish="tool_calls"),
                  sse(usage={"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}), "data: [DONE]\n\n"]:
            yield c

    async def collect():
        builder = ResponseBuilder(ResponsesRequest(model="m", input="x"), "resp_1", lambda text: len(text))
        return [json.loads(e.split("data: ", 1)[1]) async for e in _events(chunks(), builder, lambda: None)]

    events = asyncio.run(collect())
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed"
    assert [(o["type"], o["status"]) for o in final["output"]] == [
        ("reasoning", "completed"), ("message", "completed"), ("function_call", "completed")]
    assert final["output"][0]["content"][0]["text"] == "thinking" and final["usage"]["output_tokens"] == 5
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
