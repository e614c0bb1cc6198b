"""Kept engines: reused for rounds that fit them (grown for longer ones), never while busy, never beyond the
model's context."""

from __future__ import annotations

from fronde.infer.engine_cache import EngineCache
from fronde.infer.sampling import SamplingParams
from tests.model.helpers import tiny_model


def test_an_engine_that_fits_is_reused_grown_and_never_while_busy():
    model = tiny_model(eos_token_id=None)
    cache = EngineCache(keep=2)
    a = cache.get(model, 8, 40)
    assert cache.get(model, 8, 100) is a  # both round up to 128 tokens
    assert a.max_model_len == 128
    a.generate([list(range(5, 45))], SamplingParams(max_tokens=3, temperature=0))
    assert cache.get(model, 8, 200) is a and a.max_model_len == 256  # grown: a longer turn of the same episode
    assert a.cache.n_blocks == 8 * 256 // 16 + 1
    assert a.generate([list(range(5, 45))], SamplingParams(max_tokens=3, temperature=0))[0].cached_tokens == 32
    assert cache.get(model, 4, 40) is a  # fewer rows fit in it too
    b = cache.get(model, 16, 40)
    assert b is not a and len(cache.engines) == 2
    busy = cache.get(model, 4, 40)
    busy.add_request([5, 6, 7], SamplingParams(max_tokens=3))
    c = cache.get(model, 4, 40)
    assert c is not busy  # a round that died half-way leaves its engine behind
    assert cache.engines == [b]  # and is dropped
    other = tiny_model(eos_token_id=None)
    assert cache.get(other, 4, 40).model is other
    assert all(e.model is other for e in cache.engines)  # engines over the old weights are dropped


def test_context_is_rounded_within_the_model():
    model = tiny_model(eos_token_id=None)
    limit = model.config.max_position_embeddings
    assert EngineCache().get(model, 2, limit - 3).max_model_len == limit
    assert EngineCache().get(model, 2, limit + 5).max_model_len == limit + 5  # longer than the model allows: as asked
