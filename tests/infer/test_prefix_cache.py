"""Prefix caching: a prompt that starts like an earlier one prefills only the rest, and gets the same tokens as an
engine without the cache; the cache is exact (token-compared), bounded (idle blocks evicted oldest first) and
forgotten when the weights change."""

from __future__ import annotations

import pytest
import torch

from fronde.infer.engine import Engine
from fronde.infer.paged_cache import CacheFull, PagedLatentCache
from fronde.infer.rollout import EngineRollouts
from fronde.infer.sampling import SamplingParams
from fronde.train.optim import OptimConfig, Optimizers
from tests.model.helpers import tiny_model

GREEDY = SamplingParams(max_tokens=6, temperature=0)


@pytest.fixture(scope="module")
def model():
    return tiny_model(eos_token_id=None)


def _ids(n, seed):
    return torch.randint(2, 4096, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _fresh(model, prompts, params=GREEDY):
    return [r.output_ids for r in Engine(model, prefix_caching=False).generate(prompts, params)]


def test_a_conversations_next_turn_prefills_only_what_is_new(model):
    engine = Engine(model, max_batch=4, block_size=4)
    system = _ids(10, 1)
    first = engine.generate([system + _ids(5, 2)], GREEDY)[0]
    assert first.cached_tokens == 0
    # turn 2: the whole first turn (prompt + answer) and a new user message
    turn2 = system + _ids(5, 2) + first.output_ids + _ids(7, 3)
    second = engine.generate([turn2], GREEDY)[0]
    assert second.cached_tokens == 20  # the full blocks of the 21 tokens fed in turn 1 (the last answer token never was)
    assert second.output_ids == _fresh(model, [turn2])[0]
    # another conversation with the same system prompt: its 2 full blocks
    other = engine.generate([system + _ids(9, 4)], GREEDY)[0]
    assert other.cached_tokens == 8
    assert other.output_ids == _fresh(model, [system + _ids(9, 4)])[0]
    assert engine.cached_tokens == 28 and engine.prompt_tokens == 15 + len(turn2) + 19


def test_the_last_prompt_token_is_always_fed(model):
    engine = Engine(model, block_size=4)
    prompt = _ids(12, 5)  # three full blocks
    engine.generate([prompt], GREEDY)
    again = engine.generate([prompt], GREEDY)[0]
    assert again.cached_tokens == 8  # not 12: the last token's logits give the first new token
    assert again.output_ids == _fresh(model, [prompt])[0]


def test_prompts_arriving_together_share_what_the_first_computes(model):
    engine = Engine(model, max_batch=8, block_size=4, prefill_chunk=1024)
    shared = _ids(16, 6)
    prompts = [shared + _ids(3, 10 + i) for i in range(4)] + [_ids(9, 20)]
    out = engine.generate(prompts, GREEDY)
    # the first and the unrelated prompt prefill in the first step, the other three wait one step and reuse
    assert [r.cached_tokens for r in out] == [0, 16, 16, 16, 0]
    assert [r.output_ids for r in out] == _fresh(model, prompts)


def test_a_cache_salt_shares_prefixes_only_within_it(model):
    engine = Engine(model, block_size=4)
    prompt = _ids(13, 9)

    def cached(salt):
        engine.add_group(prompt, [GREEDY], cache_salt=salt)
        req = engine.waiting[-1][0]
        while engine.has_work():
            engine.step()
        return req.cached_tokens

    assert [cached("tenant-a"), cached("tenant-b"), cached(None), cached("tenant-a"), cached(None)] == [0, 0, 0, 12, 12]


def test_samples_of_a_cached_prompt_fork_from_it(model):
    engine = Engine(model, block_size=4)
    prompt = _ids(14, 7)
    engine.generate([prompt], GREEDY)
    params = [SamplingParams(max_tokens=5, temperature=1.0, seed=s) for s in range(3)]
    ids = engine.add_group(prompt, params)
    group = list(engine.waiting[-1])
    while engine.has_work():
        engine.step()
    assert [r.id for r in group] == ids and group[0].cached_tokens == 12
    alone = Engine(model, prefix_caching=False)
    assert [r.output_ids for r in group] == [alone.generate([prompt], p)[0].output_ids for p in params]


def test_idle_blocks_are_evicted_when_the_pool_needs_them(model):
    # 13 usable blocks of 4 tokens; each request holds 3 or 4: cached prefixes make room as new prompts come
    engine = Engine(model, max_batch=2, max_model_len=16, n_blocks=14, block_size=4)
    prompts = [_ids(9, 30 + i) for i in range(12)]
    for p in prompts:
        assert engine.generate([p], GREEDY)[0].output_ids == _fresh(model, [p])[0]
    assert engine.cache.available() == 13 and len(engine.cache.prefix.idle) > 0
    # the most recent prompt is still cached, the first long gone
    assert engine.generate([prompts[-1]], GREEDY)[0].cached_tokens == 8
    assert engine.generate([prompts[0]], GREEDY)[0].cached_tokens == 0


def test_the_cache_is_forgotten_when_the_weights_change():
    model = tiny_model(eos_token_id=None).train()
    engine = Engine(model, block_size=4)
    prompt = _ids(13, 8)
    engine.generate([prompt], GREEDY)
    assert engine.generate([prompt], GREEDY)[0].cached_tokens == 12
    # a fused AdamW step (it leaves the tensors' version counters alone): fronde's optimizers say so
    opt = Optimizers(model, OptimConfig(lr=1e-2), torch.device("cpu"))
    model.train()
    model(torch.tensor([prompt]), torch.tensor([prompt[1:] + [0]])).loss.backward()
    opt.step()
    model.eval()
    after = engine.generate([prompt], GREEDY)[0]
    assert after.cached_tokens == 0
    assert after.output_ids == _fresh(model, [prompt])[0]
    assert engine.generate([prompt], GREEDY)[0].cached_tokens == 12
    with torch.no_grad():  # any other in-place write
        next(model.parameters()).mul_(1.5)
    assert engine.generate([prompt], GREEDY)[0].cached_tokens == 0


def test_paged_cache_matches_by_tokens_and_keeps_blocks_exact():
    config = tiny_model().config
    cache = PagedLatentCache(config, n_blocks=6, block_size=2, prefix_caching=True)
    cache.add(1)
    cache.reserve(1, 5)
    cache.lengths[1] = 5
    cache.commit(1, [1, 2, 3], [4, 5])  # blocks [1 2] [3 4] full, [5] not
    assert len(cache.prefix.entries) == 2
    cache.release(1)
    assert cache.available() == 5 and list(cache.prefix.idle) == [2, 1]  # the tail first (evicted first)
    cache.add(2)
    assert cache.match(2, [1, 2, 3, 4, 9]) == 4  # both blocks, held again
    assert not cache.prefix.idle
    cache.add(3)
    assert cache.match(3, [1, 2, 3, 9, 9]) == 2  # same first block, another second one
    assert cache.match(3, [1, 2, 3, 9, 9]) == 2  # matching again changes nothing
    cache.add(4)
    assert cache.match(4, [1, 2]) == 0  # never the whole prompt
    cache.release(2)
    cache.release(3)
    cache.reserve(4, 10)  # 5 blocks: the idle cached ones are evicted for it, the tails first
    assert not cache.prefix.entries and cache.available() == 0
    with pytest.raises(CacheFull):
        cache.reserve(4, 11)


def test_rollouts_sample_identical_prompts_as_one_group(model):
    # a multi-turn episode's first turn asks for each prompt's G rows one by one: the same samples as a group of G
    prompts = [_ids(11, 40), _ids(6, 41)]
    grouped = EngineRollouts().sample(model, prompts, 3, 5, 1.0, 1.0, 7, stop_ids=[])
    rows = EngineRollouts()
    one_by_one = rows.sample(model, [p for p in prompts for _ in range(3)], 1, 5, 1.0, 1.0, 7, stop_ids=[])
    assert [c.ids for g in grouped for c in g] == [g[0].ids for g in one_by_one]
    engine = rows.engines.engines[-1]
    assert engine.prompt_tokens == 17  # each prompt prefilled once


@pytest.mark.parametrize("graphs,chains", [(False, False), (True, False), (False, True)])
def test_random_schedules_over_shared_prefixes_and_a_small_pool(model, graphs, chains):
    # prompts drawn from a few shared starts (repeats, extensions of earlier prompts with their outputs), joining
    # and aborted at random steps, groups of n, a pool small enough to evict, speculative decoding on or off:
    # every request gets what it gets alone from a plain engine, and the pool ends whole
    # (chains: a model whose next token depends on its last only, and prompts that restart its chains, so that
    # prompt lookup's guesses are often right)
    import random

    from tests.infer.test_speculative import bigram_model

    if chains:
        model = bigram_model()

    def alone(prompt, p):
        return Engine(model, max_batch=1, block_size=4, prefix_caching=False).generate([prompt], p)[0].output_ids

    accepted = 0
    for trial in range(6):
        rng = random.Random(100 + trial)
        max_batch = rng.choice([3, 5, 8])
        engine = Engine(model, max_batch=max_batch, block_size=4, prefill_chunk=rng.choice([3, 16, 64]),
                        max_model_len=64, n_blocks=rng.choice([16, 24, 40]) + 1, cuda_graphs=graphs,
                        speculative_tokens=rng.choice([0, 3]))
        stems = [[rng.randrange(2, 4096) for _ in range(rng.randint(4, 20))] for _ in range(3)]
        if chains:
            stems = [s + Engine(model).generate([s], GREEDY)[0].output_ids + s[-2:] for s in stems]
        finished: list[list[int]] = []  # prompt + output of finished requests: next turns extend them
        expected, got, aborted, added = {}, {}, set(), 0
        while added < 12 or engine.has_work():
            if added < 12 and rng.random() < 0.5:
                base = rng.choice(stems + finished[-3:]) if finished else rng.choice(stems)
                extra = rng.choice([0, 0, 3]) if chains else rng.randint(0, 8)  # chains: mostly restarted as is
                prompt = (base + [rng.randrange(2, 4096) for _ in range(extra)])[:40] or [5]
                params = [SamplingParams(max_tokens=rng.randint(1, 12), temperature=rng.choice([0.0, 1.0]),
                                         seed=rng.randrange(1000)) for _ in range(rng.choice([1, 1, 2]))]
                for rid, p in zip(engine.add_group(prompt, params), params):
                    expected[rid], got[rid] = (prompt, p), []
                added += 1
            for ev in engine.step():
                got[ev.request_id].append(ev.token)
                if ev.finish_reason is not None:
                    finished.append(expected[ev.request_id][0] + got[ev.request_id])
            if got and rng.random() < 0.05:
                rid = rng.choice(list(got))
                engine.abort(rid)
                aborted.add(rid)
        cache = engine.cache
        assert cache.usage() == 0.0 and not cache.refs and cache.available() == cache.n_blocks - 1
        assert engine.cached_tokens > 0, trial  # the cache was used
        accepted += engine.accepted_tokens
        for rid, (prompt, p) in expected.items():
            if rid not in aborted:
                assert got[rid] == alone(prompt, p), (trial, rid)
    assert accepted > 0 or not chains  # good guesses were checked and kept
