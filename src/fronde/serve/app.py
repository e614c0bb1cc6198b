"""`fronde serve`: OpenAI's /v1/models, /v1/completions and /v1/chat/completions over the engine, with API keys.

A thin layer: request validation and response shapes come from serve/protocol.py, tokens from serve/async_engine.py,
text from serve/text.py. Every error a client can cause answers in OpenAI's error shape with a 4xx status.
The web UI (serve/ui.py) and the runs dashboard's API (serve/runs.py) are routers included here.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fronde.data.chat import render_chat
from fronde.data.tokenizer import Tokenizer
from fronde.infer.constrain import GrammarError, Grammars, response_format_grammar
from fronde.infer.engine import Engine
from fronde.infer.sampling import SamplingParams
from fronde.model.checkpoint import from_pretrained
from fronde.model.precision import compute_dtype
from fronde.serve.async_engine import AsyncEngine, Submission, merged
from fronde.serve.auth import check_key, is_public
from fronde.serve.choices import Echo, chat_logprobs, choice, completion_logprobs, echo_logprobs
from fronde.serve.observability import AuditLog, Metrics
from fronde.serve.protocol import ChatRequest, CompletionRequest, PromptTokensDetails, Usage, error_body, now
from fronde.serve.responses import responses_router
from fronde.serve.runs import RunsConfig, runs_router
from fronde.serve.text import TextOffsets, TextStream
from fronde.serve.tokenize import tokenizer_router
from fronde.serve.tools import TurnStream, tool_choice_prefix
from fronde.serve.ui import ui_router

log = logging.getLogger(__name__)


@dataclass
class ServerConfig:
    model_dir: Path
    served_name: str | None = None
    api_keys: tuple[str, ...] = ()
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    max_batch: int = 32  # sequences decoded together
    max_model_len: int | None = None
    enforce_eager: bool = False  # no CUDA graphs for the decode step (fronde.infer.graphs)
    prefix_caching: bool = True  # reuse the cache of prompt starts seen before (fronde.infer.prefix_index)
    speculative_tokens: int = 0  # guesses checked per decode step; 0 = off
    speculative_method: str = "ngram"  # "ngram" (prompt lookup, fronde.infer.lookup) or "mtp" (the model's MTP layer)
    prefill_chunk: int | None = None  # prompt tokens prefilled per engine step (None: the engine's default)
    max_queue: int = 64  # requests waiting for a slot before new ones get 429
    max_body_bytes: int = 4 * 1024 * 1024
    audit_log: Path | None = None
    log_content: bool = False
    runs: RunsConfig | None = None  # --runs DIR: the runs dashboard beside the chat playground


class ClientError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers, self.kind = headers, kind


class Tracker:
    """Times one request's tokens for the metrics, and writes its audit record when it ends."""

    def __init__(self, server: Server, rid: str, key: str | None, n_prompt: int, prompt: Any) -> None:
        self.server, self.rid, self.key, self.n_prompt, self.prompt = server, rid, key, n_prompt, prompt
        self.start = self.last = time.perf_counter()
        self.tokens = 0
        self.subs: list[Submission] = []  # the engine's sequences, once submitted
        server.metrics.prompt_tokens.inc(n_prompt)

    def usage(self, completion_tokens: int) -> dict[str, Any]:
        return Usage(prompt_tokens=self.n_prompt, completion_tokens=completion_tokens,
                     total_tokens=self.n_prompt + completion_tokens,
                     prompt_tokens_details=PromptTokensDetails(cached_tokens=self.cached())).model_dump()

    def cached(self) -> int:
        """Prompt tokens found in the prefix cache (a prompt's n samples share one prefill: its first counts)."""
        return sum(s.cached_tokens for s in self.subs)

    def token(self) -> None:
        t = time.perf_counter()
        (self.server.metrics.ttft if self.tokens == 0 else self.server.metrics.itl).observe(t - self.last)
        self.last, self.tokens = t, self.tokens + 1
        self.server.metrics.generation_tokens.inc()

    def done(self, status: str, output: str | None) -> None:
        latency = time.perf_counter() - self.start
        self.server.metrics.latency.observe(latency)
        cached = self.cached()
        self.server.metrics.cached_prompt_tokens.inc(cached)
        self.server.audit.write({"request_id": self.rid, "key_id": self.key, "model": self.server.name,
                                 "prompt_tokens": self.n_prompt, "cached_tokens": cached,
                                 "completion_tokens": self.tokens,
                                 "latency_s": round(latency, 4), "status": status}, self.prompt, output)


class Server:
    """The loaded model, tokenizer and engine; `ready` turns true once loading finishes."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.name = cfg.served_name or cfg.model_dir.name
        self.ready = False
        self.load_error: str | None = None
        self.tok: Tokenizer | None = None
        self.grammars: Grammars | None = None
        self.engine: AsyncEngine | None = None
        self.metrics = Metrics(lambda: self.engine.load() if self.engine else (0, 0),
                               lambda: self.engine.engine.cache.usage() if self.engine else 0.0,
                               lambda: (self.engine.engine.drafted_tokens, self.engine.engine.accepted_tokens)
                               if self.engine else (0, 0))
        self.audit = AuditLog(cfg.audit_log, cfg.log_content)

    def load(self) -> None:
        try:
            self.tok = Tokenizer.load(self.cfg.model_dir)
            model = from_pretrained(self.cfg.model_dir, dtype=compute_dtype(self.cfg.device), device=self.cfg.device)
            stops = [i for i in (model.config.eos_token_id, self.tok.special.end) if i is not None]
            self.grammars = Grammars(self.tok, stops)
            self.engine = AsyncEngine(Engine(model, max_batch=self.cfg.max_batch, max_model_len=self.cfg.max_model_len,
                                             grammars=self.grammars, prefill_chunk=self.cfg.prefill_chunk,
                                             cuda_graphs=False if self.cfg.enforce_eager else None,
                                             prefix_caching=self.cfg.prefix_caching,
                                             speculative_tokens=self.cfg.speculative_tokens,
                                             speculative_method=self.cfg.speculative_method),
                                      on_failure=self.metrics.engine_failures.inc)
            self.ready = True
        except Exception as e:  # reported by /health and /v1 (`fronde serve` says it and stops)
            self.load_error = f"{type(e).__name__}: {e}"

    # -- request -> token ids and sampling parameters ------------------------------------------------------
    def params(self, req: CompletionRequest | ChatRequest, logprobs: int | None, extra_stops: list[int],
               banned: list[int] | None = None, grammar: str | None = None) -> SamplingParams:
        max_tokens = req.max_completion_tokens or req.max_tokens or 256
        return SamplingParams(max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
                              min_p=req.min_p, repetition_penalty=req.repetition_penalty,
                              presence_penalty=req.presence_penalty, frequency_penalty=req.frequency_penalty,
                              seed=req.seed, stop_token_ids=list(req.stop_token_ids) + extra_stops, logprobs=logprobs,
                              banned_token_ids=banned or [], grammar=grammar,
                              logit_bias=self.logit_bias(req.logit_bias or {}))

    def logit_bias(self, bias: dict[str, float]) -> dict[int, float]:
        out = {}
        vocab = self.engine.engine.config.vocab_size
        for key, value in bias.items():
            if not key.lstrip("-").isdigit() or not 0 <= int(key) < vocab:
                raise ClientError(400, f"logit_bias: {key!r} is not a token id (0 to {vocab - 1})", param="logit_bias")
            if not -100 <= value <= 100:
                raise ClientError(400, f"logit_bias: {value} for token {key} is outside [-100, 100]",
                                  param="logit_bias")
            out[int(key)] = float(value)
        return out

    def submit(self, ids: list[int], params: list[SamplingParams], cache_salt: str | None = None
               ) -> list[Submission]:
        assert self.engine is not None
        if self.engine.load()[1] >= self.cfg.max_queue:
            raise ClientError(429, f"the server is busy ({self.cfg.max_queue} requests already queued); retry soon",
                              code="rate_limit_exceeded", headers={"Retry-After": "1"}, kind="rate_limit_error")
        try:
            return self.engine.submit(ids, params, cache_salt)
        except ValueError as e:
            raise ClientError(400, str(e), param="max_tokens", code="context_length_exceeded") from None


def create_app(cfg: ServerConfig, load_in_background: bool = True) -> FastAPI:
    server = Server(cfg)
    app = FastAPI(title="fronde", docs_url=None, redoc_url=None)
    app.state.server = server
    app.state.loader = None
    if load_in_background:
        app.state.loader = threading.Thread(target=server.load, name="fronde-load", daemon=True)
        app.state.loader.start()
    else:
        server.load()

    @app.exception_handler(ClientError)
    async def _client_error(_: Request, e: ClientError) -> JSONResponse:
        return JSONResponse(error_body(e.message, e.kind, param=e.param, code=e.code), status_code=e.status,
                            headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        err = e.errors()[0]
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        if err.get("type") == "json_invalid":
            return JSONResponse(error_body(f"malformed JSON body: {err.get('msg')}"), status_code=400)
        field = ".".join(loc) or None
        return JSONResponse(error_body(f"{field}: {err.get('msg')}" if field else str(err.get("msg")),
                                       param=field), status_code=400)

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        response = await _admit(server, request)
        if response is None:
            response = await call_next(request)
        server.metrics.requests.labels(request.url.path, str(response.status_code)).inc()
        return response

    app.include_router(ui_router(chat=True, runs=cfg.runs is not None, auth=bool(cfg.api_keys)))
    app.include_router(tokenizer_router(server))
    if cfg.runs is not None:
        app.include_router(runs_router(cfg.runs))

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health")
    async def health() -> JSONResponse:
        if server.ready:
            return JSONResponse({"status": "ok", "model": server.name})
        return JSONResponse({"status": "loading" if not server.load_error else "failed",
                             "error": server.load_error}, status_code=503)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": server.name, "object": "model", "created": now(),
                                            "owned_by": "fronde"}]}

    def check_model(name: str) -> None:
        if name != server.name:
            raise ClientError(404, f"model {name!r} is not served here (this server has {server.name!r})",
                              param="model", code="model_not_found")

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        check_model(req.model)
        tok = server.tok
        if req.suffix:
            raise ClientError(400, "suffix (fill-in-the-middle) is not supported", param="suffix")
        if req.best_of not in (None, req.n):
            raise ClientError(400, "best_of is not supported; ask for n samples and rank them yourself",
                              param="best_of")
        prompts = req.prompts()
        if not prompts:
            raise ClientError(400, "prompt is empty", param="prompt")
        if len(prompts) > server.cfg.max_queue:
            raise ClientError(400, f"{len(prompts)} prompts in one request; at most {server.cfg.max_queue}",
                              param="prompt")
        batch: list[list[int]] = []
        for i, p in enumerate(prompts):
            ids = p if isinstance(p, list) else tok.encode(p, bos=True)
            try:
                server.engine.engine.check_prompt(ids)
            except ValueError as e:
                raise ClientError(400, str(e), param="prompt" if len(prompts) == 1 else f"prompt.{i}") from None
            batch.append(ids)
        echoes = None
        if req.echo:
            try:
                logprobs = (await server.engine.run(lambda engine: engine.prompt_logprobs(batch, req.logprobs or 0))
                            if req.logprobs is not None else [None] * len(batch))
            except ValueError as e:
                raise ClientError(400, str(e), param="prompt", code="context_length_exceeded") from None
            except Exception as e:  # noqa: BLE001 - e.g. out of memory on a long prompt: this request fails, not the server
                log.exception("scoring a prompt for echo failed")
                raise ClientError(500, f"scoring the prompt failed: {type(e).__name__}", kind="server_error") from None
            echoes = [Echo(p if isinstance(p, str) else tok.decode(ids, skip_special_tokens=True), ids, lp)
                      for p, ids, lp in zip(prompts, batch, logprobs)]
        params = server.params(req, req.logprobs, [])
        return await _respond(server, req, request, batch, params, chat=False, prompt=req.prompt, echoes=echoes)

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, request: Request):
        check_model(req.model)
        tok = server.tok
        messages = [m.model_dump(exclude_none=True) for m in req.messages]
        for m in messages:  # OpenAI's newer name for the system role
            if m["role"] == "developer":
                m["role"] = "system"
        try:
            ids, _ = render_chat(tok, messages, tools=req.tools, add_generation_prompt=True)
        except (ValueError, KeyError) as e:
            raise ClientError(400, f"messages: {e}", param="messages") from None
        grammar = response_grammar(req)
        forced, banned, call_grammar = forced_call(req)
        logprobs = (req.top_logprobs or 1) if req.logprobs else None
        params = server.params(req, logprobs, [tok.special.end], banned, call_grammar or grammar)
        return await _respond(server, req, request, [ids + forced], params, chat=True, prompt=messages,
                              forced=forced)

    app.include_router(responses_router(chat, lambda text: len(server.tok.encode(text))))

    def forced_call(req: ChatRequest) -> tuple[list[int], list[int], str | None]:
        """tool_choice "required" or a named function: the call's opening token, then a grammar that admits one
        call of a declared tool with arguments valid for its schema (what makes small models' calls parse)."""
        try:
            forced, banned, grammar = tool_choice_prefix(server.tok, req.tool_choice, req.tools)
            if grammar is not None:
                server.grammars.validate(grammar)
        except GrammarError as e:
            raise ClientError(400, f"tools: {e}", param="tools") from None
        except ValueError as e:
            raise ClientError(400, str(e), param="tool_choice") from None
        return forced, banned, grammar

    def response_grammar(req: ChatRequest) -> str | None:
        """JSON mode constrains the message content, so it cannot be combined with a forced tool call."""
        try:
            grammar = response_format_grammar(req.response_format)
            if grammar is not None:
                server.grammars.validate(grammar)
        except GrammarError as e:
            raise ClientError(400, f"response_format: {e}", param="response_format") from None
        if grammar is not None and req.tools and req.tool_choice not in (None, "auto", "none"):
            raise ClientError(400, "response_format json modes constrain the reply's content; they cannot be "
                              "combined with tool_choice 'required' or a named function", param="response_format")
        return grammar

    return app


async def _admit(server: Server, request: Request) -> JSONResponse | None:
    """Refuse early what must not reach a handler: oversized bodies, missing keys, requests before the model.
    The web page's own files need no key (the page asks for it); the APIs it calls do."""
    path = request.url.path
    if is_public(path):
        return None
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > server.cfg.max_body_bytes:
        return JSONResponse(error_body(f"request body of {size} bytes exceeds {server.cfg.max_body_bytes}"),
                            status_code=413)
    refused = check_key(server.cfg.api_keys, request)
    if refused is not None:
        return refused
    if path.startswith("/v1/") and not server.ready:
        said = f"the model failed to load: {server.load_error}" if server.load_error else "the model is still loading"
        return JSONResponse(error_body(said, kind="server_error"), status_code=503)
    return None


def _decoder(server: Server, req: CompletionRequest | ChatRequest, chat: bool, forced: list[int]):
    """What turns a sample's tokens into OpenAI fields: an assistant-turn parser for chat, plain text otherwise."""
    if chat:
        return TurnStream(server.tok, req.stop_strings(), forced)
    return TextStream(server.tok, req.stop_strings())


def _finish_reason(decoder: TurnStream | TextStream, finish: str) -> str:
    if decoder.stopped:
        return "stop"
    if isinstance(decoder, TurnStream) and decoder.tool_calls and finish == "stop":
        return "tool_calls"
    return finish


async def _respond(server: Server, req: CompletionRequest | ChatRequest, request: Request, prompts: list[list[int]],
                   params: SamplingParams, chat: bool, prompt: Any, forced: list[int] | None = None,
                   echoes: list[Echo] | None = None):
    """Choice p * n + j is sample j of prompt p; each prompt is prefilled once for its n samples."""
    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    n_prompt = sum(len(ids) for ids in prompts)
    tracker = Tracker(server, rid, request.state.key_id, n_prompt, prompt)
    samples = [params.model_copy(update={"seed": None if params.seed is None else params.seed + i})
               for i in range(req.n)]
    subs: list[Submission] = []
    try:
        for ids in prompts:
            subs += server.submit(ids, samples, req.cache_salt)
    except ClientError as e:
        for sub in subs:
            server.engine.abort(sub.request_id)
        tracker.done(f"rejected {e.status}", None)
        raise
    tracker.subs = subs
    decoders = [_decoder(server, req, chat, forced or []) for _ in subs]
    choice_echoes = [e for e in echoes for _ in range(req.n)] if echoes else [None] * len(subs)
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(_stream(server, subs, decoders, rid, req, chat, include_usage, tracker,
                                         choice_echoes, params.logprobs is not None),
                                 media_type="text/event-stream")
    choices, completion_tokens = [], 0
    for i, (sub, decoder, echo) in enumerate(zip(subs, decoders, choice_echoes)):
        finish, n_tokens, lp = await _run(server, sub, decoder, params.logprobs is not None, tracker)
        completion_tokens += n_tokens
        choices.append(choice(i, decoder, finish, lp, server.tok, echo))
    tracker.done("ok", "\n".join(str(c["message"]["content"]) if chat else c["text"] for c in choices))
    return {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": now(),
            "model": server.name, "choices": choices, "usage": tracker.usage(completion_tokens)}


async def _run(server: Server, sub: Submission, decoder: TurnStream | TextStream, want_logprobs: bool,
               tracker: Tracker):
    tokens, logprobs = 0, []
    finish = None
    while finish is None:
        ev = await sub.events.get()
        if ev is None:
            tracker.done("engine error", None)
            raise ClientError(500, "the engine failed while generating", kind="server_error")
        tracker.token()
        tokens += 1
        if want_logprobs:
            logprobs.append(ev)
        decoder.push(ev.token)
        if decoder.stopped:
            server.engine.abort(sub.request_id)
            finish = "stop"
        else:
            finish = ev.finish_reason
    if isinstance(decoder, TurnStream):
        decoder.finish()
    else:
        decoder.flush()
    return _finish_reason(decoder, finish), tokens, logprobs


async def _stream(server: Server, subs: list[Submission], decoders: list[TurnStream | TextStream], rid: str, req,
                  chat: bool, include_usage: bool, tracker: Tracker, echoes: list[Echo | None],
                  want_logprobs: bool) -> AsyncIterator[str]:
    """OpenAI stream chunks as tokens come: text (completions) or content / reasoning / tool-call deltas (chat).
    With logprobs, a chunk carries those of the tokens since the previous chunk of its choice (a token whose text
    is held back, e.g. half a character, goes with the chunk that releases it)."""
    created, kind = now(), "chat.completion.chunk" if chat else "text_completion"
    tok = server.tok
    pending: list[list[Any]] = [[] for _ in subs]  # token events not yet sent, per choice
    offsets = [TextOffsets(tok, len(e.text) if e is not None else 0) for e in echoes]

    def logprobs(i: int) -> dict[str, Any] | None:
        if not want_logprobs:
            return None
        events, pending[i] = pending[i], []
        if chat:
            return chat_logprobs(tok, events)
        return completion_logprobs(tok, events, offsets[i])

    def chunk(i: int, delta: dict[str, Any] | str, finish: str | None, lp: dict[str, Any] | None = None) -> str:
        if chat:
            choice = {"index": i, "delta": delta, "logprobs": lp, "finish_reason": finish}
        else:
            choice = {"index": i, "text": delta, "logprobs": lp, "finish_reason": finish}
        return "data: " + json.dumps({"id": rid, "object": kind, "created": created, "model": server.name,
                                      "choices": [choice]}) + "\n\n"

    finished = [False] * len(subs)
    tokens = 0
    try:
        if chat:
            for i in range(len(subs)):
                yield chunk(i, {"role": "assistant"}, None)
        for i, echo in enumerate(echoes):  # completions' echo: the prompt is the first text of its choices
            if echo is not None:
                lp = echo_logprobs(tok, echo) if want_logprobs and echo.logprobs is not None else None
                yield chunk(i, echo.text, None, lp)
        async for i, ev in merged(subs):
            if ev is None:
                yield "data: " + json.dumps(error_body("the engine failed while generating", "server_error")) + "\n\n"
                return
            if finished[i]:
                continue
            tracker.token()
            tokens += 1
            pending[i].append(ev)
            decoder = decoders[i]
            delta = decoder.push(ev.token)
            finish = ev.finish_reason
            if decoder.stopped:
                server.engine.abort(subs[i].request_id)
                finish = "stop"
            if finish:
                finished[i] = True
                if isinstance(decoder, TurnStream):
                    tail = decoder.finish()
                    for key, value in tail.items():  # merge the tail into this token's delta
                        delta[key] = delta.get(key, [] if key == "tool_calls" else "") + value
                else:
                    delta += decoder.flush()
                finish = _finish_reason(decoder, finish)
            if delta or finish:
                yield chunk(i, delta, finish, logprobs(i))
            if all(finished):
                break
        if include_usage:
            yield "data: " + json.dumps({"id": rid, "object": kind, "created": created, "model": server.name,
                                          "choices": [], "usage": tracker.usage(tokens)}) + "\n\n"
        yield "data: [DONE]\n\n"
    finally:
        for sub, done in zip(subs, finished):
            if not done:  # the client went away: free the sequence and its cache now
                server.engine.abort(sub.request_id)
        tracker.done("ok" if all(finished) else "disconnected",
                     "\n".join(d.text if isinstance(d, TextStream) else str(d.turn().content) for d in decoders))
