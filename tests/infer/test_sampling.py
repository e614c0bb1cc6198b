"""Sampling arithmetic against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from fronde.infer.sampling import (
    SamplerState,
    SamplingParams,
    _draw,
    apply_penalties,
    filter_logits,
    sample,
    sample_batch,
)


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


def _state(seed=None, **kw):
    return SamplerState(SamplingParams(seed=seed, **kw), prompt_ids=[0])


def test_a_mixed_batch_draws_what_each_row_draws_alone():
    """Rows with different settings (greedy, seeded top-p, penalties, a banned token, a grammar mask) batched
    together give the tokens and logprobs each gets alone: a row never depends on its neighbours."""
    logits = torch.randn(5, 50, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(50, dtype=torch.bool)
    mask[[3, 7, 11]] = True
    rows = [dict(temperature=0), dict(seed=1, temperature=0.7, top_p=0.9), dict(seed=2, repetition_penalty=1.3),
            dict(seed=3, banned_token_ids=[int(logits[3].argmax())], temperature=0.1), dict(seed=4)]
    masks = [None, None, None, None, mask]
    together = sample_batch(logits, [_state(**r) for r in rows], masks)
    alone = [sample(logits[i], _state(**r), masks[i]) for i, r in enumerate(rows)]
    assert together == alone
    assert together[0][0] == int(logits[0].argmax())
    assert together[3][0] != int(logits[3].argmax())
    assert together[4][0] in (3, 7, 11)
    for i, (token, logprob, _) in enumerate(together):  # the logprob is under the raw distribution
        assert logprob == pytest.approx(float(logits[i].log_softmax(-1)[token]), abs=1e-5)


def test_draws_follow_the_distribution_and_never_a_masked_token():
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    logits = probs.log().expand(20_000, 4).contiguous()
    states = [_state(seed=s) for s in range(20_000)]
    tokens = [t for t, _, _ in sample_batch(logits, states)]
    freq = torch.bincount(torch.tensor(tokens), minlength=4).float() / len(tokens)
    assert freq[3] == 0  # zero probability, never drawn
    assert torch.allclose(freq, probs, atol=0.015)  # ~4 standard errors at n = 20,000


def test_the_top_of_the_cdf_falls_on_a_token_with_probability(monkeypatch):
    """A uniform that lands at the very top of the CDF takes the last token with any probability, not a masked one."""
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.tensor(1.0))  # the edge: u x total == total
    assert _draw(torch.tensor([[0.25, 0.75, 0.0, 0.0]]), [_state(seed=0)]).tolist() == [1]


def test_filters_apply_row_by_row_on_a_batch():
    logits = torch.randn(3, 40, generator=torch.Generator().manual_seed(1))
    for kw in (dict(top_k=5), dict(top_p=0.7), dict(min_p=0.2), dict(temperature=0.5, top_k=3, top_p=0.5)):
        p = SamplingParams(**kw)
        assert torch.equal(filter_logits(logits, p), torch.stack([filter_logits(row, p) for row in logits]))


def test_logit_bias_adds_to_the_logits_and_logprobs_stay_raw():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    forced = sample_batch(logits, [_state(temperature=0, logit_bias={3: 100.0})])[0]
    assert forced[0] == 3 and forced[1] == pytest.approx(float(logits[0].log_softmax(-1)[3]))
    assert sample_batch(logits, [_state(temperature=0, logit_bias={0: -100.0})])[0][0] == 1  # banned in effect
    nudged = sample_batch(logits, [_state(temperature=0, logit_bias={1: 1.5, 0: -0.1})])[0]
    assert nudged[0] == 1  # 1.0 + 1.5 > 2.0 - 0.1
    draws = [sample_batch(logits, [_state(seed=s, logit_bias={2: 3.0})])[0][0] for s in range(200)]
    share = draws.count(2) / 200  # softmax([2, 1, 3.5, -1]) gives token 2 about 0.76
    assert 0.65 < share < 0.87
