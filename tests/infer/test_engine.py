"""The engine: greedy output equals the plain forward's argmax; continuous batching equals one-at-a-time;
seeds, stops, aborts and the bounded paged cache."""

from __future__ import annotations

import pytest
import torch

from fronde.infer.engine import Engine
from fronde.infer.sampling import SamplingParams
from fronde.model.info import model_info
from tests.model.helpers import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model(eos_token_id=None)  # no stop token: outputs run to max_tokens


def _prompts(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(2, 4096, (n,), generator=g).tolist() for n in lengths]


def _reference_greedy(model, prompt, n):
    ids = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(n):
            ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids[0, len(prompt):].tolist()


def test_greedy_equals_plain_forward_argmax(model):
    prompts = _prompts([3, 17, 9])
    engine = Engine(model, max_batch=4, prefill_chunk=5)  # prompts longer than a chunk are prefilled in pieces
    out = engine.generate(prompts, SamplingParams(max_tokens=10, temperature=0))
    for req, prompt in zip(out, prompts):
        assert req.output_ids == _reference_greedy(model, prompt, 10)
        assert req.finish_reason == "length"


def test_prompts_of_different_lengths_prefill_in_one_forward(model):
    # a GRPO batch's prompts all differ in length: one padded forward prefills them, and the padding (written to
    # the scratch block, never read by a real token) changes nothing
    prompts = _prompts([3, 17, 9, 30, 1], seed=4)
    engine = Engine(model, max_batch=5, prefill_chunk=1024, block_size=4)
    shapes = []
    forward = model.forward

    def spy(ids, **kw):
        shapes.append(tuple(ids.shape))
        return forward(ids, **kw)

    model.forward = spy
    try:
        out = engine.generate(prompts, SamplingParams(max_tokens=6, temperature=0))
    finally:
        del model.forward  # the module-wide fixture's own forward again
    assert shapes[0] == (5, 30) and shapes[1:] == [(5, 1)] * 5
    for req, prompt in zip(out, prompts):
        assert req.output_ids == _reference_greedy(model, prompt, 6)


def test_continuous_batching_equals_one_at_a_time(model):
    prompts = _prompts([5, 12, 3, 8, 20], seed=1)
    params = [SamplingParams(max_tokens=n, temperature=0) for n in (6, 3, 9, 4, 7)]
    alone = [Engine(model).generate([p], q)[0].output_ids for p, q in zip(prompts, params)]
    engine = Engine(model, max_batch=2, prefill_chunk=4)
    ids = [engine.add_request(p, q) for p, q in zip(prompts[:3], params[:3])]
    outputs: dict[int, list[int]] = {i: [] for i in ids}
    steps = 0
    while engine.has_work():
        for ev in engine.step():
            outputs[ev.request_id].append(ev.token)
        steps += 1
        if steps == 3:  # requests join a batch that is already running
            for p, q in zip(prompts[3:], params[3:]):
                rid = engine.add_request(p, q)
                outputs[rid] = []
                ids.append(rid)
    assert [outputs[i] for i in ids] == alone
    assert engine.cache.usage() == 0.0  # every block returned


def test_seeded_sampling_is_reproducible_whatever_the_batch(model):
    p = SamplingParams(max_tokens=12, temperature=1.0, top_p=0.9, seed=1234)
    prompt = _prompts([6], seed=2)[0]
    alone = Engine(model).generate([prompt], p)[0].output_ids
    mixed = Engine(model, max_batch=3).generate(_prompts([4, 9], seed=3) + [prompt],
                                               [SamplingParams(max_tokens=5, temperature=1.0)] * 2 + [p])
    assert mixed[2].output_ids == alone
    other = Engine(model).generate([prompt], p.model_copy(update={"seed": 99}))[0].output_ids
    assert other != alone


def test_filters_that_leave_one_token_are_greedy(model):
    prompt = _prompts([7], seed=4)[0]
    greedy = Engine(model).generate([prompt], SamplingParams(max_tokens=6, temperature=0))[0].output_ids
    for kw in ({"top_k": 1}, {"top_p": 1e-6}, {"min_p": 1.0}):
        out = Engine(model).generate([prompt], SamplingParams(max_tokens=6, temperature=1.0, seed=5, **kw))
        assert out[0].output_ids == greedy, kw


def test_stop_token_and_logprobs(model):
    prompt = _prompts([5], seed=5)[0]
    greedy = Engine(model).generate([prompt], SamplingParams(max_tokens=6, temperature=0))[0].output_ids
    req = Engine(model).generate([prompt], SamplingParams(max_tokens=6, temperature=0, stop_token_ids=[greedy[2]],
                                                          logprobs=3))[0]
    assert req.output_ids == greedy[: greedy.index(greedy[2]) + 1] and req.finish_reason == "stop"
    assert all(lp <= 0 for lp in req.logprobs) and len(req.top_logprobs[0]) == 3
    assert req.top_logprobs[0][0][0] == req.output_ids[0]  # greedy token is the top alternative


def test_abort_frees_the_cache_and_admission_respects_the_pool(model):
    engine = Engine(model, max_batch=8, n_blocks=1 + 2, block_size=16, max_model_len=32)
    a = engine.add_request(_prompts([10])[0], SamplingParams(max_tokens=20, temperature=0))
    engine.add_request(_prompts([10], seed=6)[0], SamplingParams(max_tokens=20, temperature=0))
    engine.step()
    assert len(engine.running) == 1 and len(engine.waiting) == 1  # the pool holds one 30-token sequence
    engine.abort(a)
    assert engine.cache.usage() == 0.0 and not engine.running
    engine.step()
    assert len(engine.running) == 1


def test_too_long_requests_are_refused(model):
    engine = Engine(model, max_model_len=16)
    with pytest.raises(ValueError, match="exceeds the context of 16 tokens"):
        engine.add_request(list(range(2, 12)), SamplingParams(max_tokens=10))


def test_cache_bytes_per_token_are_mla_sized(model):
    engine = Engine(model.to(torch.bfloat16))
    assert engine.cache.bytes_per_token == model_info(model.config).kv_bytes_per_token_mla
    model.float()


def test_generate_cli_streams_a_completion(tmp_path, model):
    from typer.testing import CliRunner

    from fronde.cli.main import app
    from fronde.data.tokenizer import train_tokenizer
    from fronde.model.checkpoint import save_pretrained

    tok = train_tokenizer(["def hello(world):\n    return world * 2\n"] * 50, vocab_size=512)
    tok.save(tmp_path)
    small = tiny_model(vocab_size=tok.vocab_size, eos_token_id=tok.special.eos)
    save_pretrained(small, tmp_path)
    args = ["generate", str(tmp_path), "def hello(", "--max-tokens", "12", "--temperature", "0"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("def hello(") and len(first.output) > len("def hello(\n")
    assert CliRunner().invoke(app, args).output == first.output  # greedy: the same text again
    # with prompt-lookup guesses: the same text (the prompt repeats itself, so there is something to guess)
    spec = ["generate", str(tmp_path), "def hello(world):\n    return world * 2\n" * 3, "--max-tokens", "12",
            "--temperature", "0"]
    assert CliRunner().invoke(app, spec + ["--speculative-tokens", "4"]).output == CliRunner().invoke(app, spec).output
    bracketed = CliRunner().invoke(app, ["generate", str(tmp_path), "[/x] def [draft](", "--max-tokens", "2"])
    assert bracketed.exit_code == 0 and bracketed.output.startswith("[/x] def [draft]("), bracketed.output  # not markup
    missing = CliRunner().invoke(app, ["generate", str(tmp_path / "nope"), "x"])
    assert missing.exit_code == 2 and "no tokenizer" in missing.output
    chat = CliRunner().invoke(app, ["chat", str(tmp_path), "--temperature", "0", "--max-tokens", "5",
                                    "--speculative-tokens", "3"], input="hello\n/reset\nhello\n\n")
    assert chat.exit_code == 0, chat.output
    replies = [line.split("model> ", 1)[1] for line in chat.output.splitlines() if "model> " in line]
    assert len(replies) == 2 and replies[0] == replies[1]  # greedy, and /reset really starts over


def test_n_samples_share_one_prefill_and_match_separate_requests(model):
    prompt = _prompts([37], seed=7)[0]
    params = [SamplingParams(max_tokens=6, temperature=1.0, seed=s) for s in (1, 2, 3)]
    separate = [Engine(model).generate([prompt], p)[0].output_ids for p in params]
    engine = Engine(model, prefill_chunk=16, block_size=16)
    prefills = []
    original = engine._forward
    engine._forward = lambda reqs, toks, **kw: (prefills.append(len(toks[0])) if len(toks[0]) > 1 else None,
                                                original(reqs, toks, **kw))[1]
    ids = engine.add_group(prompt, params)
    outputs = {i: [] for i in ids}
    while engine.has_work():
        for ev in engine.step():
            outputs[ev.request_id].append(ev.token)
            if len(outputs[ev.request_id]) == 1 and ev.request_id == ids[0]:
                assert engine.cache.refs[engine.cache.tables[ids[1]][0]] == 3  # prompt blocks shared 3 ways
    assert [outputs[i] for i in ids] == separate
    assert prefills == [16, 16, 5]  # the 37-token prompt went through the model once
    assert engine.cache.usage() == 0.0


def test_aborting_the_leader_before_its_prefill_hands_over_to_a_follower(model):
    prompt = _prompts([40], seed=8)[0]
    engine = Engine(model, prefill_chunk=8)
    ids = engine.add_group(prompt, [SamplingParams(max_tokens=3, temperature=0)] * 2)
    engine.step()  # the leader is part-way through its prefill
    engine.abort(ids[0])
    out = []
    while engine.has_work():
        out += [ev.token for ev in engine.step() if ev.request_id == ids[1]]
    assert out == _reference_greedy(model, prompt, 3) and engine.cache.usage() == 0.0


def test_grammar_constrains_every_sample_of_a_batch():
    """JSON mode in the engine: each sequence (n samples of one prompt, batched with an unconstrained one) has its
    own grammar state, and every constrained output is a valid instance of the schema."""
    import json

    import jsonschema

    from fronde.data.tokenizer import train_tokenizer
    from fronde.infer.constrain import Grammars

    tok = train_tokenizer(['{"a": [true, false], "b": 12} the quick brown fox\n'] * 200, vocab_size=400)
    model = tiny_model(vocab_size=tok.vocab_size, eos_token_id=tok.special.eos)
    schema = {"type": "object", "required": ["a", "b"], "additionalProperties": False,
              "properties": {"a": {"type": "array", "items": {"type": "boolean"}, "maxItems": 3},
                             "b": {"type": "integer", "minimum": -5, "maximum": 500}}}
    grammars = Grammars(tok, [tok.special.eos])
    engine = Engine(model, max_batch=4, grammars=grammars)
    prompt = tok.encode("give json", bos=True)
    params = [SamplingParams(max_tokens=80, temperature=1.0, seed=s, grammar=grammars.json_schema(schema))
              for s in range(3)]
    ids = engine.add_group(prompt, params)
    free = engine.add_request(prompt, SamplingParams(max_tokens=20, temperature=1.0, seed=9))
    reqs = {r.id: r for group in engine.waiting for r in group}
    while engine.has_work():
        engine.step()
    for rid in ids:
        req = reqs[rid]
        assert req.finish_reason == "stop" and req.output_ids[-1] == tok.special.eos
        jsonschema.validate(json.loads(tok.decode(req.output_ids[:-1])), schema)
    assert reqs[free].constraint is None and len(reqs[free].output_ids) >= 1
    with pytest.raises(ValueError, match="grammars"):
        Engine(model).add_request(prompt, params[0])


def test_short_prompts_are_prefilled_together_within_the_token_budget(model):
    prompts = _prompts([5, 5, 5, 7])
    engine = Engine(model, max_batch=4, prefill_chunk=20)
    for p in prompts:
        engine.add_request(p, SamplingParams(max_tokens=3, temperature=0))
    first = engine.step()
    assert len(first) == 3  # 5 + 5 + 5 tokens fit the budget of 20; the 7-token prompt waits for the next step
    out = {}
    for ev in first:
        out.setdefault(ev.request_id, []).append(ev.token)
    while engine.has_work():
        for ev in engine.step():
            out.setdefault(ev.request_id, []).append(ev.token)
    assert [out[i] for i in sorted(out)] == [_reference_greedy(model, p, 3) for p in prompts]


@pytest.mark.parametrize("graphs", [False, True])
def test_random_schedules_give_each_request_its_own_output(model, graphs):
    # requests of random lengths and sample counts arriving at random steps, prefill chunks that split prompts,
    # random aborts: every request that was not aborted gets what it gets alone, and every block comes back
    # (graphs=True: the padded static decode step CUDA graphs replay, run eagerly here)
    import random

    def alone(prompt, p):
        return Engine(model, max_batch=1, block_size=4).generate([prompt], p)[0].output_ids

    for trial in range(5):
        rng = random.Random(trial)
        engine = Engine(model, max_batch=rng.choice([3, 5, 8]), block_size=4, prefill_chunk=rng.choice([3, 16, 64]),
                        max_model_len=64, cuda_graphs=graphs)
        pending = [([rng.randrange(2, 4096) for _ in range(rng.randint(1, 30))],
                    [SamplingParams(max_tokens=rng.randint(1, 20), temperature=rng.choice([0.0, 1.0]),
                                    seed=rng.randrange(1000)) for _ in range(rng.choice([1, 1, 2, 3]))])
                   for _ in range(rng.randint(3, 7))]
        expected, got, aborted = {}, {}, set()
        while pending or engine.has_work():
            if pending and rng.random() < 0.5:
                prompt, params = pending.pop()
                for rid, p in zip(engine.add_group(prompt, params), params):
                    expected[rid], got[rid] = (prompt, p), []
            for ev in engine.step():
                got[ev.request_id].append(ev.token)
            if got and rng.random() < 0.05:
                rid = rng.choice(list(got))
                engine.abort(rid)
                aborted.add(rid)
        assert engine.cache.usage() == 0.0
        for rid, (prompt, p) in expected.items():
            if rid not in aborted:
                assert got[rid] == alone(prompt, p), (trial, rid)


def test_prompt_logprobs_in_padded_batches_equal_each_prompt_alone(model):
    """echo's scoring: prompts of many lengths, split into several right-padded batches, score as each alone does
    (and as the model's own forward does); a one-token prompt has nothing to score."""
    engine = Engine(model, max_batch=4)
    engine.SCORE_TOKENS = 64  # several batches
    gen = torch.Generator().manual_seed(3)
    prompts = [torch.randint(0, model.config.vocab_size, (n,), generator=gen).tolist() for n in (9, 1, 30, 17, 2, 25)]
    together = engine.prompt_logprobs(prompts, top_k=2)
    for ids, got in zip(prompts, together):
        assert got == [] if len(ids) == 1 else len(got) == len(ids) - 1
        (alone,) = engine.prompt_logprobs([ids], top_k=2)
        with torch.no_grad():
            want = model(torch.tensor([ids[:-1]])).logits[0].float().log_softmax(-1) if len(ids) > 1 else None
        for j, ((value, top), (value1, top1)) in enumerate(zip(got, alone)):
            assert value == pytest.approx(value1, abs=1e-4) and [t for t, _ in top] == [t for t, _ in top1]
            assert value == pytest.approx(float(want[j, ids[j + 1]]), abs=1e-4)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        engine.prompt_logprobs([[1, 2], [model.config.vocab_size]])
