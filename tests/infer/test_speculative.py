"""Speculative decoding by prompt lookup: the tokens (and logprobs) are those plain decoding gives, greedy or
sampled with a seed, whatever is guessed; good guesses save forwards."""

from __future__ import annotations

import pytest
import torch

from fronde.infer.engine import Engine
from fronde.infer.lookup import PromptLookup
from fronde.infer.sampling import SamplingParams
from fronde.model.moe import Experts
from tests.model.helpers import tiny_model


def test_prompt_lookup_proposes_what_followed_the_latest_earlier_match():
    look = PromptLookup([1, 2, 3, 4, 9, 2, 3, 5, 6, 7])
    assert look.propose(3) == []  # "6 7" and "7" never occurred before
    look.extend([2, 3])
    assert look.propose(3) == [5, 6, 7]  # "2 3" last occurred before 5 6 7 (the longest match, the latest)
    look.extend([4])
    assert look.propose(2) == [9, 2]  # "2 3 4" occurred once, at the start
    assert look.propose(0) == []
    assert PromptLookup([7, 7]).propose(4) == []  # "7 7" occurs only as the suffix ("7" alone is too short)
    assert PromptLookup([7, 7, 7]).propose(4) == [7]


def bigram_model(**overrides):
    """Attention and feed-forward outputs zeroed: the next token depends on the current one only, so generation
    runs in cycles that prompt lookup guesses right."""
    model = tiny_model(eos_token_id=None, **overrides)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight", "down_proj")):
                p.zero_()
        for m in model.modules():
            if isinstance(m, Experts):
                m.down_proj.zero_()
    return model


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_good_guesses_save_forwards_and_change_no_token(temperature):
    model = bigram_model()
    params = SamplingParams(max_tokens=40, temperature=temperature, seed=3, logprobs=2)
    start = [11, 12, 13]
    chain = Engine(model).generate([start], params)[0].output_ids
    prompt = start + chain[:20] + start  # the model starts the same chain again: prompt lookup guesses it
    plain = Engine(model).generate([prompt], params)[0]
    engine = Engine(model, speculative_tokens=4)
    engine.add_request(prompt, params)
    req = engine.waiting[-1][0]
    steps = 0
    while engine.has_work():
        engine.step()
        steps += 1
    assert req.output_ids == plain.output_ids
    assert req.logprobs == pytest.approx(plain.logprobs, abs=1e-4)
    assert [[t for t, _ in top] for top in req.top_logprobs] == [[t for t, _ in top] for top in plain.top_logprobs]
    assert engine.drafted_tokens > 0 and engine.accepted_tokens > 0
    if temperature == 0:
        assert plain.output_ids[:20] == chain[:20]
        assert engine.accepted_tokens >= 15 and steps < 30  # 40 tokens in fewer than 40 steps


def test_partly_right_guesses_stops_and_lengths_in_a_batch(monkeypatch):
    # guesses that are the true continuation with a wrong token at a random place (or none): rows of a batch accept
    # different numbers of tokens, a stop token and max_tokens fall inside guessed runs, n samples of one prompt
    import random

    from fronde.infer import engine as engine_module

    model = tiny_model(eos_token_id=None)
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randint(2, 4096, (n,), generator=g).tolist() for n in (12, 7, 20)]
    params = [SamplingParams(max_tokens=17, temperature=0), SamplingParams(max_tokens=9, temperature=1.0, seed=4),
              SamplingParams(max_tokens=12, temperature=0.8, seed=2)]
    stop = Engine(model).generate([prompts[0]], params[0])[0].output_ids[6]
    params[0] = SamplingParams(max_tokens=17, temperature=0, stop_token_ids=[stop])
    group = [SamplingParams(max_tokens=10, temperature=1.0, seed=s) for s in (1, 2)]
    plain = [r.output_ids for r in Engine(model).generate(prompts, params)]
    plain_group = [Engine(model).generate([prompts[1]], p)[0].output_ids for p in group]
    truth = {tuple(p): out for p, out in zip(prompts, plain)}
    rng = random.Random(0)

    class Oracle(PromptLookup):
        def propose(self, k):
            prompt = next(p for p in truth if tuple(self.seq[: len(p)]) == p)
            done = len(self.seq) - len(prompt)
            guess = list(truth[prompt][done : done + k])
            if guess and rng.random() < 0.6:
                guess[rng.randrange(len(guess))] = 3  # a wrong guess somewhere
            return guess

    monkeypatch.setattr(engine_module, "PromptLookup", Oracle)
    spec = Engine(model, speculative_tokens=4, max_batch=4)
    assert [r.output_ids for r in spec.generate(prompts, params)] == plain
    assert plain[0][-1] == stop and 0 < spec.accepted_tokens < spec.drafted_tokens
    truth[tuple(prompts[1])] = plain_group[0]  # the group's guesses follow its first sample
    assert_group_gives(spec, prompts[1], group, plain_group)


def assert_group_gives(engine: Engine, prompt: list[int], group: list[SamplingParams], expected: list[list[int]]):
    """n samples of one prompt (its prefill shared) run to the end give `expected`, and every block is freed."""
    ids = engine.add_group(prompt, group)
    reqs = list(engine.waiting[-1])
    while engine.has_work():
        engine.step()
    assert [r.id for r in reqs] == ids and [r.output_ids for r in reqs] == expected
    assert engine.cache.usage() == 0.0
