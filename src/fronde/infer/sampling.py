"""Turning logits into the next token, per request: penalties, temperature, top-k, top-p, min-p, seeded draws.

Semantics follow OpenAI/vLLM: presence and frequency penalties count generated tokens; the repetition penalty
(divide positive logits, multiply negative ones) counts prompt and generated tokens; temperature 0 is greedy.
Each request with a seed draws from its own generator, so its output does not depend on what it is batched with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict, Field


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(64, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0 disables")
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    seed: int | None = None
    stop_token_ids: list[int] = Field(default_factory=list)
    banned_token_ids: list[int] = Field(default_factory=list, description="never sampled (e.g. tool_choice none)")
    logprobs: int | None = Field(None, ge=0, le=20, description="top alternatives to return per token")
    grammar: str | None = Field(None, description="llguidance grammar the output must follow (JSON mode)")


@dataclass
class SamplerState:
    params: SamplingParams
    prompt_ids: list[int]
    output_ids: list[int] = field(default_factory=list)
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        if self.params.seed is not None:
            self.generator = torch.Generator().manual_seed(self.params.seed)


def apply_penalties(logits: torch.Tensor, state: SamplerState) -> torch.Tensor:
    p = state.params
    if p.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(state.prompt_ids) | set(state.output_ids)), dtype=torch.long)
        if len(seen):
            vals = logits[seen]
            logits[seen] = torch.where(vals > 0, vals / p.repetition_penalty, vals * p.repetition_penalty)
    if (p.presence_penalty or p.frequency_penalty) and state.output_ids:
        counts = torch.bincount(torch.tensor(state.output_ids), minlength=logits.shape[-1]).to(logits)
        logits -= p.frequency_penalty * counts + p.presence_penalty * (counts > 0).to(logits)
    return logits


def filter_logits(logits: torch.Tensor, p: SamplingParams) -> torch.Tensor:
    """Temperature-scaled logits with everything top-k / top-p / min-p exclude set to -inf."""
    logits = logits / p.temperature
    if p.top_k and p.top_k < logits.shape[-1]:
        kth = logits.topk(p.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    if p.min_p > 0:
        logits = logits.masked_fill(probs < p.min_p * probs.max(), float("-inf"))
    if p.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > p.top_p  # keep the smallest prefix reaching top_p
        logits = logits.masked_fill(torch.zeros_like(outside).scatter(0, order, outside), float("-inf"))
    return logits


def sample(logits: torch.Tensor, state: SamplerState,
           allowed: torch.Tensor | None = None) -> tuple[int, float, list[tuple[int, float]]]:
    """One row of logits (V,) -> (token, its logprob, top alternatives) under the model's raw distribution.
    `allowed` (bool, V) is a grammar's mask: nothing outside it is ever drawn."""
    raw = logits.float()
    logprobs = raw.log_softmax(-1)
    adjusted = apply_penalties(raw.clone(), state)
    p = state.params
    if p.banned_token_ids:
        adjusted[p.banned_token_ids] = float("-inf")
    if allowed is not None:
        adjusted.masked_fill_(~allowed.to(adjusted.device), float("-inf"))
    if p.temperature == 0:
        token = int(adjusted.argmax())
    else:
        probs = filter_logits(adjusted, p).softmax(-1)
        token = int(torch.multinomial(probs.cpu(), 1, generator=state.generator))
    top: list[tuple[int, float]] = []
    if p.logprobs:
        values, ids = logprobs.topk(p.logprobs)
        top = list(zip(ids.tolist(), values.tolist()))
    return token, float(logprobs[token]), top
