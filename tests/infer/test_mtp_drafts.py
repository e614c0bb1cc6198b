"""Speculative decoding with the model's MTP layer: the output is plain decoding's whatever the layer guesses, the
guesses are those the training path's MTP layer makes (its cache holds the right entries), and a layer that predicts
well saves forwards."""

from __future__ import annotations

import random

import pytest
import torch
from typer.testing import CliRunner

from fronde.infer.engine import Engine
from fronde.infer.sampling import SamplingParams
from tests.infer.test_speculative import assert_group_gives, bigram_model
from tests.model.helpers import tiny_model


def exact_mtp_model():
    """A bigram model (attention and feed-forward outputs zeroed: the next token depends on the current one only)
    whose MTP layer passes the embedding of t_{i+1} straight to the shared head: it predicts t_{i+2} from t_{i+1}
    exactly as the model will, so greedy guesses are always right."""
    model = bigram_model(num_nextn_predict_layers=1)  # the MTP layer's block zeroed too
    with torch.no_grad():
        d = model.config.hidden_size
        model.mtp.eh_proj.weight.zero_()
        model.mtp.eh_proj.weight[:, :d] = torch.eye(d)  # keep enorm(embedding), drop the hidden state
        model.lm_head.weight.mul_(20)  # peaked next-token distributions: sampled guesses are often right too
    return model


def run(engine: Engine, prompts, params):
    """Step to the end; every request's output and the steps it took."""
    reqs = []
    for p, sp in zip(prompts, params):
        engine.add_request(p, sp)
        reqs.append(engine.waiting[-1][0])
    steps = 0
    while engine.has_work():
        engine.step()
        steps += 1
    return reqs, steps


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_layer_that_predicts_well_saves_forwards_and_changes_no_token(temperature):
    model = exact_mtp_model()
    params = [SamplingParams(max_tokens=40, temperature=temperature, seed=3, logprobs=2)]
    prompt = [[11, 12, 13, 14, 15]]
    (plain,), plain_steps = run(Engine(model), prompt, params)
    engine = Engine(model, speculative_tokens=1, speculative_method="mtp")
    (req,), steps = run(engine, prompt, params)
    assert req.output_ids == plain.output_ids
    assert req.logprobs == pytest.approx(plain.logprobs, abs=1e-4)
    assert [[t for t, _ in top] for top in req.top_logprobs] == [[t for t, _ in top] for top in plain.top_logprobs]
    assert engine.accepted_tokens > 0
    if temperature == 0:  # every guess right: two tokens a step
        assert engine.accepted_tokens == engine.drafted_tokens >= 19 and steps <= plain_steps // 2 + 1


def test_any_guesses_give_plain_decodings_output_in_a_mixed_batch():
    # random weights: the layer guesses badly and sometimes right; prompts prefilled in chunks, two sharing a start
    # (prefix caching), samples of one prompt sharing its prefill, a stop token and max_tokens
    model = tiny_model(eos_token_id=None, num_nextn_predict_layers=1)
    g = torch.Generator().manual_seed(5)
    shared = torch.randint(2, 4096, (37,), generator=g).tolist()
    prompts = [shared + [7, 8], torch.randint(2, 4096, (9,), generator=g).tolist(), shared + [9], [5]]
    params = [SamplingParams(max_tokens=17, temperature=0), SamplingParams(max_tokens=9, temperature=1.0, seed=4),
              SamplingParams(max_tokens=12, temperature=0.8, seed=2), SamplingParams(max_tokens=6, temperature=0)]
    stop = Engine(model).generate([prompts[0]], params[0])[0].output_ids[6]
    params[0] = SamplingParams(max_tokens=17, temperature=0, stop_token_ids=[stop])
    plain = [r.output_ids for r in Engine(model).generate(prompts, params)]
    group = [SamplingParams(max_tokens=10, temperature=1.0, seed=s) for s in (1, 2, 3)]
    plain_group = [Engine(model).generate([prompts[1]], p)[0].output_ids for p in group]
    spec = Engine(model, speculative_tokens=1, speculative_method="mtp", max_batch=6, prefill_chunk=16)
    assert [r.output_ids for r in spec.generate(prompts, params)] == plain
    assert plain[0][-1] == stop and spec.drafted_tokens > 0 and spec.cached_tokens > 0
    assert_group_gives(spec, prompts[1], group, plain_group)


def test_guesses_are_the_training_paths_mtp_predictions():
    """The MTP layer's cache holds the entry of every position: prompt positions (prefilled in chunks), the
    prompt's last one with the first sampled token, and each step's kept positions, rejected guesses left out.
    Its logits at each guess equal the training path's over the whole finished sequence."""
    model = tiny_model(eos_token_id=None, num_nextn_predict_layers=1)
    with torch.no_grad():  # a layer that leans on its context, so that a missing or misplaced entry shows
        for p in model.mtp.self_attn.parameters():
            p.mul_(8)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(2, 4096, (n,), generator=g).tolist() for n in (23, 6)]
    params = [SamplingParams(max_tokens=20, temperature=1.0, seed=s) for s in (7, 8)]
    engine = Engine(model, speculative_tokens=1, speculative_method="mtp", prefill_chunk=10, prefix_caching=False)
    seen: list[tuple[int, int, torch.Tensor]] = []  # (sequence, position of the entry, logits) of each guess
    mtp_logits = model.mtp_logits

    def recording(hidden, next_ids, cache, logits_at=None):
        logits = mtp_logits(hidden, next_ids, cache, logits_at)
        if logits is not None:
            for i, seq in enumerate(cache.seq_ids):
                seen.append((seq, int(cache.start[i]) + cache.counts[i] - 1, logits[i].clone()))
        return logits

    model.mtp_logits = recording
    # random weights rarely guess right: half the steps are given the right guess instead, so that steps keep two
    # positions too (the layer still reads every kept position)
    truth = {tuple(p): r.output_ids for p, r in zip(prompts, Engine(model).generate(prompts, params))}
    rng = random.Random(0)
    guesses = engine._drafts
    engine._drafts = lambda reqs: [[truth[tuple(r.prompt_ids)][len(r.output_ids)]] if d and rng.random() < 0.5
                                   else d for r, d in zip(reqs, guesses(reqs))]
    reqs, _ = run(engine, prompts, params)
    assert [r.output_ids for r in reqs] == list(truth.values()) and engine.accepted_tokens >= 10
    for r in reqs:
        full = torch.tensor([r.prompt_ids + r.output_ids])
        with torch.no_grad():
            hidden = model(full, return_hidden=True).hidden
            cos, sin = model.rotary(torch.arange(full.shape[1] - 1))
            h = model.mtp.predict(hidden[:, :-1], model.model.embed_tokens(full[:, 1:]), cos, sin)
            logits = model.lm_head(h)[0]
        mine = [(at, row) for seq, at, row in seen if seq == r.id]
        assert len(mine) >= 5 and mine[0][0] == len(r.prompt_ids) - 1
        for at, row in mine:
            if at < logits.shape[0]:  # the last guess is after the sequence's end
                torch.testing.assert_close(row, logits[at], atol=1e-4, rtol=1e-4)


def test_mtp_settings_a_model_cannot_take_are_clear_errors(tmp_path):
    plain = tiny_model()
    with pytest.raises(ValueError, match="no MTP layer"):
        Engine(plain, speculative_tokens=1, speculative_method="mtp")
    with pytest.raises(ValueError, match="one token a step"):
        Engine(tiny_model(num_nextn_predict_layers=1), speculative_tokens=3, speculative_method="mtp")
    with pytest.raises(ValueError, match="unknown speculative method"):
        Engine(plain, speculative_method="eagle")
    assert not Engine(plain, speculative_method="mtp").mtp  # no guesses asked for: nothing to check


def test_cli_drafts_with_the_mtp_layer_and_refuses_a_model_without_one(tmp_path):
    from fronde.cli.main import app
    from fronde.data.tokenizer import train_tokenizer
    from fronde.model.checkpoint import save_pretrained

    tok = train_tokenizer(["def hello(world):\n    return world * 2\n"] * 50, vocab_size=512)
    with_mtp, without = tmp_path / "mtp", tmp_path / "plain"
    for path, layers in ((with_mtp, 1), (without, 0)):
        tok.save(path)
        save_pretrained(tiny_model(vocab_size=tok.vocab_size, eos_token_id=tok.special.eos,
                                   num_nextn_predict_layers=layers), path)
    args = ["generate", str(with_mtp), "def hello(", "--max-tokens", "12", "--temperature", "0"]
    runner = CliRunner()
    plain = runner.invoke(app, args)
    drafted = runner.invoke(app, args + ["--speculative-method", "mtp"])
    assert plain.exit_code == drafted.exit_code == 0, drafted.output
    assert drafted.output == plain.output
    refused = runner.invoke(app, ["generate", str(without), "x", "--speculative-method", "mtp"])
    assert refused.exit_code == 2 and "no MTP layer" in refused.output
    serve = runner.invoke(app, ["serve", str(without), "--speculative-method", "mtp", "--port", "1"])
    assert serve.exit_code == 2 and "MTP layer" in serve.output


@pytest.mark.gpu
def test_mtp_drafting_in_bf16_on_a_gpu_keeps_the_greedy_output():
    model = exact_mtp_model().cuda().bfloat16()
    params = [SamplingParams(max_tokens=40, temperature=0)]
    prompts = [[11, 12, 13, 14, 15], list(range(100, 140))]
    plain = [r.output_ids for r in Engine(model, cuda_graphs=False).generate(prompts, params * 2)]
    engine = Engine(model, speculative_tokens=1, speculative_method="mtp")
    assert engine.graphs is None  # every step checks a guess: nothing to replay
    assert [r.output_ids for r in engine.generate(prompts, params * 2)] == plain
    assert engine.accepted_tokens >= 0.9 * engine.drafted_tokens > 0
