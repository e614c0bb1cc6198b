"""Kept engines: reused for rounds of similar shape, never while busy, never beyond the model's context."""

from __future__ import annotations

from fronde.infer.engine_cache import EngineCache
from fronde.infer.sampling import SamplingParams
from tests.model.helpers import tiny_model


def test_engines_are_kept_per_shape_and_never_reused_busy():
    model = tiny_model(eos_token_id=None)
    cache = EngineCache(keep=2)
    a = cache.get(model, 8, 40)
    assert cache.get(model, 8, 100) is a  # both round up to 128 tokens
    assert a.max_model_len == 128
    b = cache.get(model, 8, 200)
    assert b is not a and b.max_model_len == 256
    assert cache.get(model, 4, 40) is not a  # another batch: another engine; `a` is now the oldest of three
    assert len(cache.engines) == 2 and a not in cache.engines.values()
    busy = cache.get(model, 4, 40)
    busy.add_request([5, 6, 7], SamplingParams(max_tokens=3))
    assert cache.get(model, 4, 40) is not busy  # a round that died half-way leaves its engine behind
    other = tiny_model(eos_token_id=None)
    assert cache.get(other, 4, 40).model is other
    assert all(e.model is other for e in cache.engines.values())  # engines over the old weights are dropped


def test_context_is_rounded_within_the_model():
    model = tiny_model(eos_token_id=None)
    limit = model.config.max_position_embeddings
    assert EngineCache().get(model, 2, limit - 3).max_model_len == limit
    assert EngineCache().get(model, 2, limit + 5).max_model_len == limit + 5  # longer than the model allows: as asked
