"""Where an agent's turns come from: a local model dir through fronde's engine, or any OpenAI-compatible endpoint
(fronde serve, vLLM, SGLang, Ollama, llama.cpp's server) through the official `openai` client.

Both stream: reasoning and content as they are written, so the transcript is live, and hand back the turn's tool
calls OpenAI-shaped (`{"id", "type": "function", "function": {"name", "arguments"}}`). A local model's calls are
read from its tokens, so a call that is not valid JSON carries an `error` the loop returns to the model; through an
endpoint, such a call arrives as arguments that are not valid JSON, and the toolbox says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fronde.data.chat import render_chat
from fronde.data.errors import DataError
from fronde.eval.models import default_name
from fronde.infer.engine import Engine
from fronde.infer.loading import LOAD_ERRORS, load_for_inference
from fronde.infer.sampling import SamplingParams
from fronde.serve.tools import TurnStream
from fronde.tools.calls import parse_calls
from fronde.train.https_client import client_options, tls_hint

if TYPE_CHECKING:
    from fronde.agent.loop import AgentEvent


class AgentError(DataError):
    """A model dir or endpoint that cannot be used; printed without a traceback."""


@dataclass
class BackendTurn:
    content: str | None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # OpenAI-shaped, plus "error" when malformed
    finish_reason: str = "stop"  # stop | length | tool_calls


Emit = Callable[["AgentEvent"], None]


class Backend(Protocol):
    name: str

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, emit: Emit
                 ) -> BackendTurn: ...


def _event(kind: str, text: str) -> AgentEvent:
    from fronde.agent.loop import AgentEvent

    return AgentEvent(kind, text)  # type: ignore[arg-type]


def _call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


class LocalBackend:
    """A fronde (or HF DeepseekV3) model dir: fp32 on CPU, bf16 on a GPU, one conversation at a time."""

    def __init__(self, model_dir: Path, device: str = "cpu", max_tokens: int = 256, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, speculative_tokens: int = 0,
                 speculative_method: str = "ngram") -> None:
        try:
            self.tok, self.model = load_for_inference(model_dir, device)
        except LOAD_ERRORS as e:
            raise AgentError(f"{model_dir}: {e}") from None
        self.name = default_name(str(model_dir))  # <run>-<stage> for a model inside a run dir
        # one conversation: each turn starts on the cache of the last (prefix caching), and a tool call or an
        # answer that copies the context can be guessed (speculative_tokens)
        try:
            self.engine = Engine(self.model, max_batch=1, speculative_tokens=speculative_tokens,
                                 speculative_method=speculative_method)
        except ValueError as e:  # MTP drafting asked of a model without an MTP layer
            raise AgentError(f"{model_dir}: {e}") from None
        self.max_len = self.model.config.max_position_embeddings
        self.max_tokens, self.temperature, self.top_p, self.seed = max_tokens, temperature, top_p, seed
        self.calls = 0

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, emit: Emit
                 ) -> BackendTurn:
        tok = self.tok
        ids, _ = render_chat(tok, messages, tools=tools, add_generation_prompt=True)
        room = self.max_len - len(ids)
        if room < 1:
            return BackendTurn(None, finish_reason="length")  # the conversation fills the context
        self.calls += 1
        self.engine.add_request(ids, SamplingParams(
            max_tokens=min(self.max_tokens, room), temperature=self.temperature, top_p=self.top_p,
            seed=self.seed * 1_000_003 + self.calls, stop_token_ids=[tok.special.end, tok.special.eos]))
        stream = TurnStream(tok)  # content and reasoning only: the calls are read from the ids below
        out: list[int] = []
        finish, in_call = "stop", False
        while self.engine.has_work():
            for ev in self.engine.step():
                out.append(ev.token)
                finish = ev.finish_reason or finish
                if ev.token in (tok.special.tool_call, tok.special.tool_call_end):
                    in_call = ev.token == tok.special.tool_call
                elif not in_call:
                    _emit_delta(stream.push(ev.token), emit)
        _emit_delta(stream.finish(), emit)
        turn = stream.turn()
        calls = [{"id": _call_id(), "type": "function",
                  "function": {"name": c.name or "", "arguments": c.arguments_json if c.name else c.raw}}
                 | ({"error": c.error} if c.error else {}) for c in parse_calls(tok, out)]
        return BackendTurn(turn.content if turn.content or not calls else None, turn.reasoning, calls,
                           "tool_calls" if calls else finish)


class EndpointBackend:
    """An OpenAI-compatible server, streamed with the official client. Reasoning is read where the server sends it
    (`reasoning_content`: fronde serve, DeepSeek; `reasoning`: vLLM 0.34's reasoning parsers) and sent back with the
    turn's tool calls as `reasoning_content`: a fronde model is trained with its earlier turns' reasoning in the
    context of a tool episode (without it, a small one can lose its way), and DeepSeek's API wants the reasoning of
    a turn that called tools back (400 without it)."""

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None, max_tokens: int = 256,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int = 0, timeout: float = 600.0) -> None:
        import openai

        self.client = openai.OpenAI(base_url=base_url.rstrip("/"), api_key=api_key or "unused", max_retries=1,
                                    timeout=timeout, **client_options(openai))
        self._errors = (openai.APIError,)
        try:
            self.name = model or self.client.models.list().data[0].id
        except openai.APIConnectionError as e:  # nothing answers there: --model would not help
            if (hint := tls_hint(e, base_url)) is not None:
                raise AgentError(hint) from None
            raise AgentError(f"{base_url}: no server answers there ({e}); start one (fronde serve MODEL_DIR) or "
                             "check the URL") from None
        except (*self._errors, IndexError) as e:
            raise AgentError(f"{base_url}: cannot list the served models ({e}); pass --model NAME") from None
        self.max_tokens, self.temperature, self.top_p, self.seed = max_tokens, temperature, top_p, seed

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, emit: Emit
                 ) -> BackendTurn:
        extra = {"tools": tools, "tool_choice": "auto"} if tools else {}
        try:
            stream = self.client.chat.completions.create(
                model=self.name, messages=messages, stream=True, max_tokens=self.max_tokens,
                temperature=self.temperature, top_p=self.top_p, seed=self.seed, **extra)
            content, reasoning, calls, finish = [], [], {}, "stop"
            for chunk in stream:
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                finish = choice.finish_reason or finish
                delta = choice.delta
                fields = delta.model_extra or {}  # fronde, older vLLM: reasoning_content; vLLM 0.34: reasoning
                think = fields.get("reasoning_content") or fields.get("reasoning")
                if think:
                    reasoning.append(think)
                    emit(_event("reasoning", think))
                if delta.content:
                    content.append(delta.content)
                    emit(_event("content", delta.content))
                for tc in delta.tool_calls or []:
                    call = calls.setdefault(tc.index, {"id": tc.id or _call_id(), "type": "function",
                                                       "function": {"name": "", "arguments": ""}})
                    if tc.function is not None:
                        call["function"]["name"] += tc.function.name or ""
                        call["function"]["arguments"] += tc.function.arguments or ""
        except self._errors as e:
            raise AgentError(f"{self.name}: the endpoint refused the request ({e})") from None
        return BackendTurn("".join(content) or None, "".join(reasoning) or None,
                           [calls[i] for i in sorted(calls)], finish)


def _emit_delta(delta: dict[str, Any], emit: Emit) -> None:
    if delta.get("reasoning_content"):
        emit(_event("reasoning", delta["reasoning_content"]))
    if delta.get("content"):
        emit(_event("content", delta["content"]))


def open_backend(target: str, model: str | None = None, api_key: str | None = None, device: str = "cpu",
                 speculative_tokens: int = 0, speculative_method: str = "ngram", **sampling: Any) -> Backend:
    """An http(s) URL is an endpoint (its /v1 base), anything else a local model dir."""
    if target.startswith(("http://", "https://")):
        if speculative_tokens:
            raise AgentError("--speculative-tokens and --speculative-method apply to a local model dir; an endpoint "
                             "decides for itself (fronde serve --speculative-tokens K)")
        base = target.rstrip("/")
        return EndpointBackend(base if base.endswith("/v1") else base + "/v1", model, api_key, **sampling)
    path = Path(target)
    if not (path / "config.json").is_file():
        raise AgentError(f"{target}: neither a model dir (no config.json) nor an http(s) URL")
    return LocalBackend(path, device, speculative_tokens=speculative_tokens, speculative_method=speculative_method,
                        **sampling)
