"""CUDA graphs for the decode step on a real GPU: captured without falling back, verified against the eager step,
and every captured graph replaying what the same static-shape step computes eagerly on new inputs."""

from __future__ import annotations

import warnings

import pytest
import torch

from fronde.infer.engine import Engine
from fronde.infer.sampling import SamplingParams
from tests.model.helpers import tiny_model

pytestmark = pytest.mark.gpu


def test_captured_decode_replays_the_static_step():
    model = tiny_model(eos_token_id=None).cuda().to(torch.bfloat16)
    engine = Engine(model, max_batch=6, max_model_len=80, block_size=16)
    assert engine.graphs is not None  # on by default for bf16 on a GPU
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(2, 4096, (n,), generator=g).tolist() for n in (5, 40, 17, 3, 22)]
    params = [SamplingParams(max_tokens=n, temperature=0) for n in (30, 12, 25, 33, 8)]
    params[2] = SamplingParams(max_tokens=25, temperature=1.0, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a capture that fell back to eager fails the test
        reqs = engine.generate(prompts, params)
    assert [len(r.output_ids) for r in reqs] == [30, 12, 25, 33, 8]
    graphs = engine.graphs
    assert graphs.active, graphs.failed
    captured = {key: e for key, e in graphs.entries.items() if e.graph is not None}
    assert len(captured) >= 3 and all(e.verified for e in captured.values())
    for (rows, width), entry in captured.items():  # new inputs into each graph: replay == eager, step after step
        smaller = 1
        while smaller * 2 < rows:
            smaller *= 2
        for n in sorted({rows, smaller + 1 if rows > 1 else 1}):  # row counts this graph serves (padded or not)
            starts = torch.randint(0, width * 16, (n,), generator=g).tolist()
            starts[0] = width * 16 - 1  # the widest row decides the block bucket: this graph's
            tables = [torch.randint(1, engine.cache.n_blocks, (width,), generator=g).tolist() for _ in range(n)]
            tokens = torch.randint(2, 4096, (n,), generator=g).tolist()
            replayed = graphs.logits(tokens, starts, tables)
            assert graphs.entries[(rows, width)] is entry
            eager = graphs._run(entry.view)[:n].float()
            assert replayed.shape == (n, model.config.vocab_size)
            torch.testing.assert_close(replayed, eager, atol=2e-2, rtol=2e-2)


def test_fp32_on_gpu_decodes_eagerly():
    model = tiny_model(eos_token_id=None).cuda()
    assert Engine(model).graphs is None


def test_cached_prefixes_and_a_grown_engine_decode_through_graphs():
    # a conversation's next turn starts on cached blocks, then the engine grows for a longer context (the pool is
    # reallocated, the graphs captured again): tokens as an engine that prefills everything, graphs still on
    from fronde.infer.engine_cache import EngineCache

    model = tiny_model(eos_token_id=None).cuda().to(torch.bfloat16)
    g = torch.Generator().manual_seed(1)
    first = torch.randint(2, 4096, (50,), generator=g).tolist()
    greedy = SamplingParams(max_tokens=20, temperature=0)
    kept = EngineCache()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        engine = kept.get(model, 4, 70)
        out = engine.generate([first], greedy)[0].output_ids
        turn2 = first + out + torch.randint(2, 4096, (100,), generator=g).tolist()
        assert kept.get(model, 4, len(turn2) + 20) is engine and engine.max_model_len >= 190
        again = engine.generate([turn2], greedy)[0]
    assert again.cached_tokens == 64 and engine.graphs.active, engine.graphs.failed
    plain = Engine(model, prefix_caching=False).generate([turn2], greedy)[0].output_ids
    assert sum(a == b for a, b in zip(again.output_ids, plain)) >= 18  # bf16: a near-tie may flip late
