"""The inference engine: continuous batching over MLA's absorbed latent-cache path.

Each `step()` runs at most one prefill chunk (so a long prompt never stalls the running decodes for long) and one
batched decode step for every sequence that is generating; requests join and leave between steps. Memory is the
paged latent cache's fixed pool; a request is admitted only when the pool can hold its prompt plus max_tokens, so
no running sequence ever has to be evicted.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import torch

from fronde.infer.paged_cache import PagedLatentCache
from fronde.infer.sampling import SamplerState, SamplingParams, sample
from fronde.model.model import CausalLM


@dataclass
class Request:
    id: int
    prompt_ids: list[int]
    params: SamplingParams
    sampler: SamplerState
    prefilled: int = 0  # prompt tokens already in the cache
    finish_reason: str | None = None  # "stop" | "length" | "abort"
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)

    @property
    def output_ids(self) -> list[int]:
        return self.sampler.output_ids


@dataclass(frozen=True)
class TokenEvent:
    request_id: int
    token: int
    logprob: float
    finish_reason: str | None
    top_logprobs: tuple[tuple[int, float], ...] = ()


class Engine:
    def __init__(self, model: CausalLM, *, max_batch: int = 32, max_model_len: int | None = None,
                 n_blocks: int | None = None, block_size: int = 16, prefill_chunk: int = 256) -> None:
        self.model = model.eval()
        self.config = model.config
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.max_batch, self.prefill_chunk = max_batch, prefill_chunk
        self.max_model_len = max_model_len or self.config.max_position_embeddings
        blocks_per_seq = -(-self.max_model_len // block_size)
        n_blocks = n_blocks or max_batch * blocks_per_seq + 1
        self.cache = PagedLatentCache(self.config, n_blocks, block_size, self.device, self.dtype)
        self.stop_ids = {self.config.eos_token_id} if self.config.eos_token_id is not None else set()
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self._ids = itertools.count()
        self._reserved_blocks = 0

    # -- requests -------------------------------------------------------------------------------------------
    def add_request(self, prompt_ids: list[int], params: SamplingParams | None = None) -> int:
        params = params or SamplingParams()
        if not prompt_ids:
            raise ValueError("the prompt is empty")
        if len(prompt_ids) + params.max_tokens > self.max_model_len:
            raise ValueError(f"prompt ({len(prompt_ids)} tokens) + max_tokens ({params.max_tokens}) exceeds the "
                             f"context of {self.max_model_len} tokens")
        req = Request(next(self._ids), list(prompt_ids), params, SamplerState(params, list(prompt_ids)))
        self.waiting.append(req)
        return req.id

    def abort(self, request_id: int) -> None:
        """Cancel a request (e.g. the client went away) and free its cache at once."""
        for req in list(self.running) + list(self.waiting):
            if req.id == request_id:
                req.finish_reason = "abort"
                self._finish(req)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def _worst_case_blocks(self, req: Request) -> int:
        return -(-(len(req.prompt_ids) + req.params.max_tokens) // self.cache.block_size)

    def _admit(self) -> None:
        while self.waiting and len(self.running) < self.max_batch:
            need = self._worst_case_blocks(self.waiting[0])
            if self._reserved_blocks + need > self.cache.n_blocks - 1:
                break  # wait for a running request to finish
            req = self.waiting.popleft()
            self._reserved_blocks += need
            self.cache.add(req.id)
            self.running.append(req)

    def _finish(self, req: Request) -> None:
        if req in self.running:
            self.running.remove(req)
            self._reserved_blocks -= self._worst_case_blocks(req)
            self.cache.release(req.id)
        elif req in self.waiting:
            self.waiting.remove(req)

    # -- one scheduling step ---------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self) -> list[TokenEvent]:
        self._admit()
        events: list[TokenEvent] = []
        prefilling = next((r for r in self.running if r.prefilled < len(r.prompt_ids)), None)
        decoding = [r for r in self.running if r.prefilled == len(r.prompt_ids) and r.output_ids]
        if prefilling is not None:
            chunk = prefilling.prompt_ids[prefilling.prefilled : prefilling.prefilled + self.prefill_chunk]
            logits = self._forward([prefilling], [chunk])
            prefilling.prefilled += len(chunk)
            if prefilling.prefilled == len(prefilling.prompt_ids):
                events.append(self._emit(prefilling, logits[0]))
        if decoding:
            logits = self._forward(decoding, [[r.output_ids[-1]] for r in decoding])
            events.extend(self._emit(r, row) for r, row in zip(decoding, logits))
        return events

    def _forward(self, reqs: list[Request], tokens: list[list[int]]) -> torch.Tensor:
        """Feed each request its tokens (all the same count); the last position's logits per request."""
        ids = torch.tensor(tokens, device=self.device)
        view = self.cache.view([r.id for r in reqs], ids.shape[1])
        return self.model(ids, cache=view).logits[:, -1].float()

    def _emit(self, req: Request, logits: torch.Tensor) -> TokenEvent:
        token, logprob, top = sample(logits, req.sampler)
        req.output_ids.append(token)
        req.logprobs.append(logprob)
        req.top_logprobs.append(top)
        if token in self.stop_ids or token in req.params.stop_token_ids:
            req.finish_reason = "stop"
        elif len(req.output_ids) >= req.params.max_tokens:
            req.finish_reason = "length"
        if req.finish_reason:
            self._finish(req)
        return TokenEvent(req.id, token, logprob, req.finish_reason, tuple(top))

    # -- convenience -----------------------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], params: SamplingParams | list[SamplingParams]) -> list[Request]:
        """Run prompts to completion (continuously batched) and return their finished requests, in order."""
        plist = params if isinstance(params, list) else [params] * len(prompts)
        reqs: dict[int, Request] = {}
        for prompt, p in zip(prompts, plist):
            rid = self.add_request(prompt, p)
            reqs[rid] = self.waiting[-1]
        while self.has_work():
            self.step()
        return list(reqs.values())
