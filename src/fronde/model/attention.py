"""Multi-head Latent Attention (DeepSeek-V2/V3).

Keys and values come from one low-rank latent c (kv_lora_rank) plus one shared roped key k_pe (qk_rope_head_dim).
Training expands the latent into per-head keys/values and runs SDPA. Decoding never expands it: the nope part of
kv_b_proj is absorbed into the query and the value part applied after attention, so the cache holds only
kv_lora_rank + qk_rope_head_dim numbers per token per layer, and the result equals the training path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fronde.model.cache import KVCache
from fronde.model.config import ModelConfig
from fronde.model.layers import RMSNorm
from fronde.model.rope import apply_rope

# Up to this many new tokens against a cache, attention is two matmuls over the shared latent keys (the decode step,
# guesses being checked); more (a prefill) go through SDPA, whose fused kernels win on long queries.
DECODE_TOKENS = 16


class MLA(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        c = config
        self.layer_idx = layer_idx
        self.n_heads = c.num_attention_heads
        self.nope, self.rope, self.v_dim = c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim
        self.kv_rank = c.kv_lora_rank
        self.scale = c.softmax_scale
        q_out = self.n_heads * c.qk_head_dim
        self.q_lora = c.q_lora_rank is not None
        if not self.q_lora:
            self.q_proj = nn.Linear(c.hidden_size, q_out, bias=False)
        else:
            self.q_a_proj = nn.Linear(c.hidden_size, c.q_lora_rank, bias=False)
            self.q_a_layernorm = RMSNorm(c.q_lora_rank, c.rms_norm_eps)
            self.q_b_proj = nn.Linear(c.q_lora_rank, q_out, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(c.hidden_size, c.kv_lora_rank + c.qk_rope_head_dim, bias=False)
        self.kv_a_layernorm = RMSNorm(c.kv_lora_rank, c.rms_norm_eps)
        self.kv_b_proj = nn.Linear(c.kv_lora_rank, self.n_heads * (c.qk_nope_head_dim + c.v_head_dim), bias=False)
        self.o_proj = nn.Linear(self.n_heads * c.v_head_dim, c.hidden_size, bias=False)

    def _queries(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_nope (B, H, T, nope) and roped q_pe (B, H, T, rope)."""
        B, T, _ = x.shape
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))) if self.q_lora else self.q_proj(x)
        q = q.view(B, T, self.n_heads, self.nope + self.rope).transpose(1, 2)
        q_nope, q_pe = q.split([self.nope, self.rope], dim=-1)
        if cos.dim() == 3:  # per-row positions (B, T, rope/2): broadcast over heads
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        return q_nope, apply_rope(q_pe, cos, sin)

    def _latents(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised latent c (B, T, r) and the shared roped key k_pe (B, T, rope)."""
        latent, k_pe = self.kv_a_proj_with_mqa(x).split([self.kv_rank, self.rope], dim=-1)
        return self.kv_a_layernorm(latent), apply_rope(k_pe, cos, sin)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None = None
    ) -> torch.Tensor:
        if cache is not None:
            return self.forward_absorbed(x, cos, sin, cache)
        B, T, _ = x.shape
        q_nope, q_pe = self._queries(x, cos, sin)
        latent, k_pe = self._latents(x, cos, sin)
        kv = self.kv_b_proj(latent).view(B, T, self.n_heads, self.nope + self.v_dim).transpose(1, 2)
        k_nope, v = kv.split([self.nope, self.v_dim], dim=-1)
        q = torch.cat((q_nope, q_pe), dim=-1)
        k = torch.cat((k_nope, k_pe.unsqueeze(1).expand(B, self.n_heads, T, self.rope)), dim=-1)
        pad = q.shape[-1] - self.v_dim
        if pad > 0:  # fused SDPA kernels (flash, cuDNN, CPU flash) want equal q/k/v head dims: pad v, drop it after
            v = F.pad(v, (0, pad))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)[..., : self.v_dim]
        return self.o_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.v_dim))

    def forward_absorbed(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache
    ) -> torch.Tensor:
        """Attention in the latent space against the cached context; equals forward() numerically."""
        B, T, _ = x.shape
        q_nope, q_pe = self._queries(x, cos, sin)
        latent, k_pe = self._latents(x, cos, sin)
        ctx_latent, ctx_k_pe, mask = cache.update(self.layer_idx, latent, k_pe)
        w = self.kv_b_proj.weight.view(self.n_heads, self.nope + self.v_dim, self.kv_rank)
        w_uk, w_uv = w[:, : self.nope], w[:, self.nope :]
        q_latent = torch.einsum("bhtn,hnr->bhtr", q_nope, w_uk)
        # MQA-shaped: keys [c, k_pe] and values c are shared by every head.
        q = torch.cat((q_latent, q_pe), dim=-1)
        keys = torch.cat((ctx_latent, ctx_k_pe), dim=-1)  # (B, S, r + rope)
        if T <= DECODE_TOKENS:  # decoding (a token, or a few checked guesses): two batched matmuls against the
            # shared keys, every head and position a row, with no per-head copy of the cache
            S = keys.shape[1]
            scores = torch.matmul(q.reshape(B, -1, q.shape[-1]), keys.transpose(1, 2)).view(B, -1, T, S) * self.scale
            if mask is None and T > 1:
                mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            probs = scores.softmax(-1, dtype=torch.float32).to(ctx_latent.dtype)  # fp32 softmax, as SDPA's
            out_latent = torch.matmul(probs.view(B, -1, S), ctx_latent).view(B, -1, T, self.kv_rank)  # (B, H, T, r)
        else:
            k = keys.unsqueeze(1).expand(B, self.n_heads, -1, -1)
            v = ctx_latent.unsqueeze(1).expand(B, self.n_heads, -1, -1)
            if mask is None:
                S = k.shape[2]
                mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
            out_latent = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        out = torch.einsum("bhtr,hvr->bthv", out_latent, w_uv)
        return self.o_proj(out.reshape(B, T, self.n_heads * self.v_dim))
