"""Sampling arithmetic against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from fronde.infer.sampling import SamplerState, SamplingParams, apply_penalties, filter_logits


def test_penalties_follow_openai_and_repetition_semantics():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0])
    state = SamplerState(SamplingParams(repetition_penalty=2.0, presence_penalty=0.5, frequency_penalty=0.25),
                         prompt_ids=[0], output_ids=[1, 1, 3])
    out = apply_penalties(logits.clone(), state)
    # token 0: prompt only -> repetition 2.0/2; token 1: -1*2 - (2*0.25 + 0.5); token 3: 3/2 - (0.25 + 0.5)
    assert torch.allclose(out, torch.tensor([1.0, -3.0, 0.5, 0.75]))


def test_top_k_top_p_min_p_masks():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    keep = lambda **kw: torch.isfinite(filter_logits(logits, SamplingParams(**kw))).tolist()  # noqa: E731
    assert keep(top_k=2) == [True, True, False, False]
    assert keep(top_p=0.8) == [True, True, False, False]  # 0.5 + 0.3 reaches 0.8
    assert keep(top_p=0.81) == [True, True, True, False]
    assert keep(min_p=0.5) == [True, True, False, False]  # >= 0.5 x 0.5


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError):
        SamplingParams(max_tokens=0)
