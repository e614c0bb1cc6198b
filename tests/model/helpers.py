"""Tiny real models for the model tests."""

from __future__ import annotations

import torch

from fronde.model.config import ModelConfig, load_preset
from fronde.model.model import CausalLM
from fronde.model.moe import Router


def tiny_model(seed: int = 0, bias_scale: float = 0.05, **overrides) -> CausalLM:
    """The tiny preset with overrides, random weights and a non-zero correction bias (so selection != weights)."""
    config: ModelConfig = load_preset("tiny", **overrides)
    model = CausalLM(config).init_weights(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, Router):
            m.e_score_correction_bias.copy_((torch.rand(m.n_experts, generator=gen) * 2 - 1) * bias_scale)
    return model.eval()
