"""OpenAI's Responses API (`POST /v1/responses`, `GET /v1/responses/{id}`), the API OpenAI's own SDKs and agent
frameworks now default to, served as a translation of the chat endpoint: a request becomes the chat request it
means (instructions, input items, earlier turns by `previous_response_id`, function tools, text format), and the
chat reply or stream becomes the Responses output items and events. Nothing here samples or parses tokens.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from fronde.serve.protocol import ChatRequest, ResponsesRequest, error_body

STORED = 256  # responses kept for previous_response_id and GET, newest first out last

ChatHandler = Callable[[ChatRequest, Request], Awaitable[Any]]


class ResponsesError(ValueError):
    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param, self.status = param, status


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _text(content: Any, where: str) -> str:
    """A message item's content: a string or input_text / output_text parts (anything else is refused)."""
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("input_text", "output_text", "text"):
            raise ResponsesError(f"{where}: content part of type {kind!r} is not supported (text only)", "input")
        parts.append(part.get("text", ""))
    return "".join(parts)


def input_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses input items as chat messages: messages, function calls (consecutive ones form one assistant
    turn) and their outputs; reasoning items are the model's own and are not sent back, as DeepSeek asks."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        where = f"input[{i}]"
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise ResponsesError(f"{where}: role {role!r} is not one of user, system, developer, assistant",
                                     "input")
            messages.append({"role": role, "content": _text(item.get("content"), where)})
        elif kind == "function_call":
            call = {"id": item.get("call_id") or item.get("id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments", "{}")}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") and not last["content"]:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": output if isinstance(output, str) else json.dumps(output)})
        elif kind == "reasoning":
            continue
        else:
            raise ResponsesError(f"{where}: input item of type {kind!r} is not supported", "input")
    return messages


def chat_request(req: ResponsesRequest, history: list[dict[str, Any]]) -> tuple[ChatRequest, list[dict[str, Any]]]:
    """The chat request a Responses request means, and the conversation it continues (for storing)."""
    conversation = history + input_messages(req.input)
    messages = ([{"role": "system", "content": req.instructions}] if req.instructions else []) + conversation
    tools = []
    for t in req.tools or []:
        if t.get("type") != "function":
            raise ResponsesError(f"tool of type {t.get('type')!r} is not supported (function tools only)", "tools")
        tools.append({"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters")
                                                       if k in t}})
    choice = req.tool_choice
    if isinstance(choice, dict):
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    fmt = (req.text or {}).get("format") or {"type": "text"}
    response_format = None
    if fmt.get("type") == "json_schema":
        response_format = {"type": "json_schema", "json_schema": {k: fmt[k] for k in ("name", "schema", "strict")
                                                                  if k in fmt}}
    elif fmt.get("type") == "json_object":
        response_format = {"type": "json_object"}
    body: dict[str, Any] = {
        "model": req.model, "messages": messages, "tools": tools or None, "tool_choice": choice if tools else None,
        "response_format": response_format, "temperature": req.temperature, "top_p": req.top_p,
        "max_tokens": req.max_output_tokens, "seed": req.seed, "stream": req.stream, "cache_salt": req.cache_salt,
        "stream_options": {"include_usage": True} if req.stream else None}
    try:
        return ChatRequest.model_validate({k: v for k, v in body.items() if v is not None}), conversation
    except ValidationError as e:
        err = e.errors()[0]
        raise ResponsesError(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None


class ResponseBuilder:
    """Output items (reasoning, message, function calls) and the Response object, whole or as they stream."""

    def __init__(self, req: ResponsesRequest, response_id: str, count_tokens: Callable[[str], int]) -> None:
        self.req, self.id, self.created = req, response_id, time.time()
        self.count_tokens = count_tokens
        self.output: list[dict[str, Any]] = []
        self.usage: dict[str, Any] | None = None
        self.finish: str | None = None

    def add_reasoning(self, text: str) -> dict[str, Any]:
        item = {"type": "reasoning", "id": _new_id("rs"), "summary": [],
                "content": [{"type": "reasoning_text", "text": text}], "status": "completed"}
        self.output.append(item)
        return item

    def add_message(self, text: str) -> dict[str, Any]:
        item = {"type": "message", "id": _new_id("msg"), "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}
        self.output.append(item)
        return item

    def add_call(self, call: dict[str, Any]) -> dict[str, Any]:
        item = {"type": "function_call", "id": _new_id("fc"), "call_id": call["id"],
                "name": call["function"]["name"], "arguments": call["function"]["arguments"],
                "status": "completed"}
        self.output.append(item)
        return item

    def set_usage(self, usage: dict[str, Any]) -> None:
        # The reasoning's share of the output, re-counted from its text plus the two think markers.
        reasoning = sum(self.count_tokens(i["content"][0]["text"]) + 2 for i in self.output if i["type"] == "reasoning")
        cached = usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
        self.usage = {"input_tokens": usage["prompt_tokens"], "input_tokens_details": {"cached_tokens": cached},
                      "output_tokens": usage["completion_tokens"],
                      "output_tokens_details": {"reasoning_tokens": min(reasoning, usage["completion_tokens"])},
                      "total_tokens": usage["total_tokens"]}

    def response(self, status: str | None = None) -> dict[str, Any]:
        req = self.req
        if status is None:
            status = "incomplete" if self.finish == "length" else "completed"
        return {
            "id": self.id, "object": "response", "created_at": self.created, "status": status, "model": req.model,
            "output": self.output, "usage": self.usage, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": req.instructions, "max_output_tokens": req.max_output_tokens,
            "previous_response_id": req.previous_response_id, "parallel_tool_calls": req.parallel_tool_calls,
            "temperature": req.temperature, "top_p": req.top_p, "tools": req.tools or [],
            "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
            "text": req.text or {"format": {"type": "text"}}, "metadata": req.metadata or {},
            "store": req.store, "truncation": "disabled", "reasoning": None, "user": None}

    def assistant_message(self) -> dict[str, Any]:
        """This response as the chat turn a later previous_response_id continues from."""
        text = "".join(p["text"] for item in self.output if item["type"] == "message" for p in item["content"])
        calls = [{"id": i["call_id"], "type": "function", "function": {"name": i["name"], "arguments": i["arguments"]}}
                 for i in self.output if i["type"] == "function_call"]
        return {"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})}


def responses_router(chat: ChatHandler, count_tokens: Callable[[str], int]) -> APIRouter:
    """`chat` is the server's own /v1/chat/completions handler; `count_tokens` its tokenizer's count of a text."""
    router = APIRouter()
    # id -> (response, conversation, the API key's id): a response is visible only to the key that created it
    stored: OrderedDict[str, tuple[dict[str, Any], list[dict[str, Any]], str | None]] = OrderedDict()

    def remember(builder: ResponseBuilder, conversation: list[dict[str, Any]], key: str | None) -> None:
        if not builder.req.store:
            return
        stored[builder.id] = (builder.response(), conversation + [builder.assistant_message()], key)
        while len(stored) > STORED:
            stored.popitem(last=False)

    def lookup(response_id: str, request: Request) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        entry = stored.get(response_id)
        if entry is None or entry[2] != getattr(request.state, "key_id", None):
            return None  # another key's response is as absent as a missing one
        return entry[0], entry[1]

    def fail(e: ResponsesError) -> JSONResponse:
        return JSONResponse(error_body(str(e), param=e.param), status_code=e.status)

    @router.post("/v1/responses")
    async def create(req: ResponsesRequest, request: Request):
        try:
            history: list[dict[str, Any]] = []
            if req.previous_response_id:
                found = lookup(req.previous_response_id, request)
                if found is None:
                    raise ResponsesError(f"previous response {req.previous_response_id!r} not found (this server "
                                         f"keeps its last {STORED} stored responses, in memory)",
                                         "previous_response_id", 404)
                history = found[1]
            chat_req, conversation = chat_request(req, history)
        except ResponsesError as e:
            return fail(e)
        builder = ResponseBuilder(req, _new_id("resp"), count_tokens)
        key = getattr(request.state, "key_id", None)
        reply = await chat(chat_req, request)
        if not req.stream:
            message = reply["choices"][0]["message"]
            builder.finish = reply["choices"][0]["finish_reason"]
            if message.get("reasoning_content"):
                builder.add_reasoning(message["reasoning_content"])
            if message.get("content"):
                builder.add_message(message["content"])
            for call in message.get("tool_calls") or []:
                builder.add_call(call)
            builder.set_usage(reply["usage"])
            remember(builder, conversation, key)
            return builder.response()
        return StreamingResponse(_events(reply.body_iterator, builder, lambda: remember(builder, conversation, key)),
                                 media_type="text/event-stream")

    @router.get("/v1/responses/{response_id}")
    async def retrieve(response_id: str, request: Request):
        found = lookup(response_id, request)
        if found is None:
            return fail(ResponsesError(f"response {response_id!r} not found", "response_id", 404))
        return found[0]

    return router


async def _events(chunks: AsyncIterator[str], builder: ResponseBuilder, done: Callable[[], None]
                  ) -> AsyncIterator[str]:
    """The chat stream's chunks as Responses events: an item opens when its first delta comes and closes when
    another kind of output starts or the reply ends."""
    seq = 0

    def event(kind: str, **fields: Any) -> str:
        nonlocal seq
        seq += 1
        return f"event: {kind}\ndata: " + json.dumps({"type": kind, "sequence_number": seq - 1, **fields}) + "\n\n"

    open_item: dict[str, Any] | None = None  # the reasoning or message item receiving deltas

    def close() -> list[str]:
        nonlocal open_item
        if open_item is None:
            return []
        item, index, open_item = open_item, len(builder.output) - 1, None
        item["status"] = "completed"
        if item["type"] == "reasoning":
            text = item["content"][0]["text"]
            return [event("response.reasoning_text.done", item_id=item["id"], output_index=index, content_index=0,
                          text=text), event("response.output_item.done", output_index=index, item=item)]
        part = item["content"][0]
        return [event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                      text=part["text"], logprobs=[]),
                event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                      part=part),
                event("response.output_item.done", output_index=index, item=item)]

    yield event("response.created", response=builder.response("in_progress"))
    yield event("response.in_progress", response=builder.response("in_progress"))
    async for raw in chunks:
        for line in raw.splitlines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                yield event("error", code="server_error", message=chunk["error"]["message"], param=None)
                return
            if chunk.get("usage"):
                builder.set_usage(chunk["usage"])
            for choice in chunk.get("choices", []):
                delta = choice.get("delta") or {}
                if choice.get("finish_reason"):
                    builder.finish = choice["finish_reason"]
                for kind, text in (("reasoning", delta.get("reasoning_content")), ("message", delta.get("content"))):
                    if not text:
                        continue
                    if open_item is None or open_item["type"] != kind:
                        for e in close():
                            yield e
                        open_item = builder.add_reasoning("") if kind == "reasoning" else builder.add_message("")
                        open_item["status"] = "in_progress"
                        index = len(builder.output) - 1
                        yield event("response.output_item.added", output_index=index, item=open_item)
                        if kind == "message":
                            yield event("response.content_part.added", item_id=open_item["id"], output_index=index,
                                        content_index=0, part={"type": "output_text", "text": "",
                                                               "annotations": [], "logprobs": []})
                    open_item["content"][0]["text"] += text
                    index = len(builder.output) - 1
                    if kind == "reasoning":
                        yield event("response.reasoning_text.delta", item_id=open_item["id"], output_index=index,
                                    content_index=0, delta=text)
                    else:
                        yield event("response.output_text.delta", item_id=open_item["id"], output_index=index,
                                    content_index=0, delta=text, logprobs=[])
                for call in delta.get("tool_calls") or []:
                    for e in close():
                        yield e
                    item = builder.add_call(call)
                    index = len(builder.output) - 1
                    yield event("response.output_item.added", output_index=index, item=item | {"arguments": "",
                                                                                              "status": "in_progress"})
                    yield event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                                delta=item["arguments"])
                    yield event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                name=item["name"], arguments=item["arguments"])
                    yield event("response.output_item.done", output_index=index, item=item)
    for e in close():
        yield e
    done()
    # response.completed even when the status is "incomplete" (the length limit): the openai client's stream
    # helper waits for that event to hand over its final response, as vLLM's server sends it.
    yield event("response.completed", response=builder.response())
