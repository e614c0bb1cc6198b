"""Decoupled rotary embedding for MLA: interleaved pairs, optional YaRN context extension.

DeepSeek rotates adjacent pairs (x[2i], x[2i+1]) as its reference's complex multiply does; vLLM and llama.cpp assume
that layout, and transformers matches it with rope_interleave=True.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fronde.model.config import ModelConfig, yarn_mscale
from fronde.model.layers import FP32BuffersMixin


def rope_frequencies(config: ModelConfig) -> tuple[torch.Tensor, float]:
    """Inverse frequencies and the cos/sin scale (YaRN's attention factor), as transformers computes them."""
    dim, base = config.qk_rope_head_dim, config.rope_theta
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    rs = config.rope_scaling
    if rs is None:
        return inv_freq, 1.0
    if rs.mscale and rs.mscale_all_dim:
        attention_factor = yarn_mscale(rs.factor, rs.mscale) / yarn_mscale(rs.factor, rs.mscale_all_dim)
    else:
        attention_factor = yarn_mscale(rs.factor)

    def correction_dim(rotations: float) -> float:
        return dim * math.log(rs.original_max_position_embeddings / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(correction_dim(rs.beta_fast)), 0)
    high = min(math.ceil(correction_dim(rs.beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrapolation = 1 - ramp
    inv_freq = inv_freq / rs.factor * (1 - extrapolation) + inv_freq * extrapolation
    return inv_freq, attention_factor


class RotaryEmbedding(FP32BuffersMixin, nn.Module):
    fp32_buffers = ("inv_freq",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        inv_freq, self.attention_factor = rope_frequencies(config)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin of shape positions.shape + (rope_dim/2,), in fp32."""
        angles = positions.float().unsqueeze(-1) * self.inv_freq
        return angles.cos() * self.attention_factor, angles.sin() * self.attention_factor


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of x (..., T, rope_dim) by cos/sin (T, rope_dim/2) or (B, 1, T, rope_dim/2)."""
    # (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin) as x * [c, c] + swapped(x) * [-s, s]: four whole-tensor ops
    # instead of eight strided ones, bit-identical.
    xf = x.float()
    swapped = xf.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    signed_sin = torch.stack((-sin, sin), dim=-1).flatten(-2)
    return (xf * cos.repeat_interleave(2, dim=-1) + swapped * signed_sin).to(x.dtype)
