"""GRPO's sampler keeps its engines and its low-precision weight copy between calls (CUDA graphs replay fixed
addresses): the samples must still be those of today's weights, the same as a fresh sampler's."""

from __future__ import annotations

import torch

from fronde.infer.rollout import EngineRollouts
from fronde.model.moe import MoE
from tests.model.helpers import tiny_model


def _prompts(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(2, 4096, (n,), generator=g).tolist() for n in (7, 12, 3)]


def _sample(rollouts, model, prompts, seed=1):
    groups = rollouts.sample(model, prompts, 4, 9, 1.0, 1.0, seed, stop_ids=[])
    return [[c.ids for c in g] for g in groups]


def test_kept_engine_and_refreshed_copy_sample_like_a_fresh_sampler():
    model = tiny_model(eos_token_id=None).train()
    kept = EngineRollouts(dtype=torch.bfloat16)
    prompts = _prompts()
    first = _sample(kept, model, prompts)
    assert first == _sample(EngineRollouts(dtype=torch.bfloat16), model, prompts)
    engine = kept.engines.engines[-1]
    with torch.no_grad():  # an optimizer step: the copy must follow it
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for m in model.modules():
            if isinstance(m, MoE):
                m.gate.e_score_correction_bias.add_(torch.randn_like(m.gate.e_score_correction_bias))
    second = _sample(kept, model, prompts)
    assert kept.engines.engines[-1] is engine  # same engine, same cache pool
    assert second == _sample(EngineRollouts(dtype=torch.bfloat16), model, prompts)
    assert second != first
    assert model.training  # restored after sampling
    assert all(m.tokens_per_expert.sum() == 0 for m in model.modules() if isinstance(m, MoE))


def test_fp32_sampler_uses_the_model_itself_and_keeps_a_few_engines():
    model = tiny_model(eos_token_id=None).train()
    rollouts = EngineRollouts()
    for n in (1, 2, 3, 5, 9, 17, 17):  # six batch shapes: only the last four engines are kept (the last reused)
        rollouts.sample(model, _prompts()[:1] * n, 1, 4, 0.0, 1.0, 0, stop_ids=[])
    assert len(rollouts.engines.engines) == 4
    assert all(e.model is model for e in rollouts.engines.engines)
    assert model.training
    assert all(m.tokens_per_expert.sum() == 0 for m in model.modules() if isinstance(m, MoE))
