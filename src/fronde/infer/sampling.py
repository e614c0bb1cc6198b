"""Turning logits into the next token, per request: penalties, temperature, top-k, top-p, min-p, seeded draws.

Semantics follow OpenAI/vLLM: presence and frequency penalties count generated tokens; the repetition penalty
(divide positive logits, multiply negative ones) counts prompt and generated tokens; a logit bias is added to the
penalised logits; temperature 0 is greedy. Logprobs are always those of the model's raw distribution.
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
    logit_bias: dict[int, float] = Field(default_factory=dict, description="added to these tokens' logits before "
                                         "sampling (OpenAI's logit_bias: -100 bans, +100 all but forces)")
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
    """Temperature-scaled logits (V,) or (B, V) with everything top-k / top-p / min-p exclude set to -inf."""
    logits = logits / p.temperature
    if p.top_k and p.top_k < logits.shape[-1]:
        kth = logits.topk(p.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    if p.min_p > 0:
        logits = logits.masked_fill(probs < p.min_p * probs.amax(-1, keepdim=True), float("-inf"))
    if p.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > p.top_p  # keep the smallest prefix reaching top_p
        logits = logits.masked_fill(torch.zeros_like(outside).scatter(-1, order, outside), float("-inf"))
    return logits


def _draw(probs: torch.Tensor, states: list[SamplerState]) -> torch.Tensor:
    """One token per row of probs (B, V) by inverse CDF: each row's uniform comes from its own generator (or the
    global one), so a seeded row draws the same token whatever it is batched with; the rest is one vectorised op
    (torch.multinomial row by row cost more than the tiny model's forward)."""
    u = torch.stack([torch.rand((), generator=s.generator) for s in states]).to(probs.device)
    cdf = probs.cumsum(-1)
    token = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(1).clamp_(max=probs.shape[-1] - 1)
    missed = probs.gather(1, token[:, None]).squeeze(1) == 0
    if missed.any():  # u x total rounded up to the total: take the last token with any probability, never a masked one
        last = probs.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(-1)
        token = torch.where(missed, last, token)
    return token


def _edits(state: SamplerState, allowed: torch.Tensor | None) -> bool:
    p = state.params
    return (allowed is not None or bool(p.banned_token_ids) or bool(p.logit_bias) or p.repetition_penalty != 1.0
            or bool(p.presence_penalty) or bool(p.frequency_penalty))


def sample_batch(logits: torch.Tensor, states: list[SamplerState], allowed: list[torch.Tensor | None] | None = None
                 ) -> list[tuple[int, float, list[tuple[int, float]]]]:
    """Rows of logits (B, V) -> per row (token, its logprob, top alternatives) under the model's raw distribution.
    `allowed[i]` (bool, V) is row i's grammar mask: nothing outside it is ever drawn. Rows sharing their filter
    settings (a GRPO batch: all of them) are filtered and drawn together."""
    raw = logits.float()
    allowed = allowed or [None] * len(states)
    edited = [i for i, (state, mask) in enumerate(zip(states, allowed)) if _edits(state, mask)]
    adjusted = raw.clone() if edited else raw
    for i in edited:  # the per-row parts: penalties, banned tokens, a grammar's mask
        p = states[i].params
        apply_penalties(adjusted[i], states[i])
        if p.logit_bias:
            ids = torch.tensor(list(p.logit_bias), device=adjusted.device)
            adjusted[i, ids] += torch.tensor(list(p.logit_bias.values()), device=adjusted.device)
        if p.banned_token_ids:
            adjusted[i, p.banned_token_ids] = float("-inf")
        if allowed[i] is not None:
            adjusted[i].masked_fill_(~allowed[i].to(adjusted.device), float("-inf"))
    groups: dict[tuple[float, int, float, float], list[int]] = {}
    for i, state in enumerate(states):
        p = state.params
        groups.setdefault((p.temperature, p.top_k, p.top_p, p.min_p), []).append(i)
    tokens = torch.empty(len(states), dtype=torch.long, device=raw.device)
    for (temperature, *_), rows in groups.items():
        index = torch.tensor(rows, device=raw.device)
        if temperature == 0:
            tokens[index] = adjusted[index].argmax(-1)
        else:
            probs = filter_logits(adjusted[index], states[rows[0]].params).softmax(-1)
            tokens[index] = _draw(probs, [states[i] for i in rows])
    lse = raw.logsumexp(-1)
    chosen = (raw.gather(1, tokens[:, None]).squeeze(1) - lse).tolist()
    out = []
    for i, (token, logprob) in enumerate(zip(tokens.tolist(), chosen)):
        top: list[tuple[int, float]] = []
        if states[i].params.logprobs:
            values, ids = raw[i].topk(states[i].params.logprobs)
            top = list(zip(ids.tolist(), (values - lse[i]).tolist()))
        out.append((token, logprob, top))
    return out


def sample(logits: torch.Tensor, state: SamplerState,
           allowed: torch.Tensor | None = None) -> tuple[int, float, list[tuple[int, float]]]:
    """One row of logits (V,): sample_batch for a batch of one."""
    return sample_batch(logits[None], [state], [allowed])[0]
