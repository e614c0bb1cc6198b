"""Absorbed latent-cache decoding (what inference uses) equals the training forward."""

from __future__ import annotations

import pytest
import torch

from fronde.model.cache import LatentCache
from fronde.model.info import model_info

from .helpers import tiny_model


@pytest.mark.parametrize("overrides", [{}, dict(q_lora_rank=None, first_k_dense_replace=0),
                                       dict(rope_scaling=dict(factor=2.0, original_max_position_embeddings=256,
                                                              mscale=1.0, mscale_all_dim=1.0))])
def test_token_by_token_decoding_equals_full_forward(overrides):
    model = tiny_model(**overrides)
    ids = torch.randint(0, model.config.vocab_size, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(ids).logits
        cache = LatentCache(model.config, batch_size=2, max_len=32)
        prefill = model(ids[:, :7], cache=cache).logits  # a multi-token chunk first (causal inside the chunk)
        steps = [model(ids[:, t : t + 1], cache=cache).logits for t in range(7, 20)]
    decoded = torch.cat([prefill, *steps], dim=1)
    assert (decoded - full).abs().max().item() <= 1e-4


def test_chunked_prefill_equals_full_forward():
    model = tiny_model()
    ids = torch.randint(0, model.config.vocab_size, (1, 24), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(ids).logits
        cache = LatentCache(model.config, batch_size=1, max_len=24)
        chunks = [model(ids[:, s : s + 8], cache=cache).logits for s in (0, 8, 16)]
    assert (torch.cat(chunks, 1) - full).abs().max().item() <= 1e-4


def test_cache_holds_only_latent_and_rope_key_per_token():
    model = tiny_model()
    c = model.config
    cache = LatentCache(c, batch_size=1, max_len=8, dtype=torch.bfloat16)
    expected = (c.kv_lora_rank + c.qk_rope_head_dim) * c.num_hidden_layers * 2
    assert cache.bytes_per_token == expected == model_info(c).kv_bytes_per_token_mla


def test_cache_overflow_is_a_clear_error():
    model = tiny_model()
    cache = LatentCache(model.config, batch_size=1, max_len=4)
    with pytest.raises(ValueError, match="cache holds 4 tokens"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=cache)
