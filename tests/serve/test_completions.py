"""/v1/completions as lm-evaluation-harness and OpenAI's legacy clients use it, on a real server with a tiny real
model: batched prompts (text and token ids), `echo` with the prompt's logprobs equal to the model's own forward pass,
`text_offset`, logprobs in streams, and a token id outside the vocabulary refused without harming the batch."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest
import torch

from fronde.data.tokenizer import Tokenizer
from fronde.model.checkpoint import from_pretrained
from fronde.serve.app import ServerConfig
from tests.serve.test_server import KEY, _start, model_dir  # noqa: F401 - the same tiny served model

PROMPTS = ["The quick brown fox", "def f(x):", "0123 jumps"]


@pytest.fixture(scope="module")
def served(model_dir):  # noqa: F811
    url, _, srv, thread = _start(ServerConfig(model_dir, api_keys=(KEY,), max_batch=4))
    yield url
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def client(served, model_dir):  # noqa: F811
    return openai.OpenAI(base_url=served + "/v1", api_key=KEY), model_dir.name


@pytest.fixture(scope="module")
def local(model_dir):  # noqa: F811
    return from_pretrained(model_dir).eval(), Tokenizer.load(model_dir)


def test_a_batch_of_prompts_answers_each_as_alone_in_order(client):
    c, name = client
    one = [c.completions.create(model=name, prompt=p, max_tokens=6, temperature=0).choices[0].text for p in PROMPTS]
    out = c.completions.create(model=name, prompt=PROMPTS, max_tokens=6, temperature=0, n=2)
    assert [ch.index for ch in out.choices] == list(range(6))
    assert [ch.text for ch in out.choices] == [t for t in one for _ in range(2)]  # choice p * n + j
    single = c.completions.create(model=name, prompt=PROMPTS[0], max_tokens=6, temperature=0)
    assert out.usage.prompt_tokens == sum(  # each prompt counted once, not once per sample
        c.completions.create(model=name, prompt=p, max_tokens=1).usage.prompt_tokens for p in PROMPTS)
    assert single.usage.prompt_tokens < out.usage.prompt_tokens
    ids = [[5, 6, 7, 8], [9, 10]]
    by_ids = c.completions.create(model=name, prompt=ids, max_tokens=4, temperature=0)
    assert [ch.text for ch in by_ids.choices] == [
        c.completions.create(model=name, prompt=p, max_tokens=4, temperature=0).choices[0].text for p in ids]


def test_echo_scores_the_prompt_like_the_model_itself(client, local):
    """lm-evaluation-harness's loglikelihood request: token ids, echo, logprobs=1, max_tokens=1."""
    c, name = client
    model, tok = local
    ids = tok.encode("The quick brown fox jumps over", bos=True)
    out = c.completions.create(model=name, prompt=[ids], max_tokens=1, temperature=0, echo=True, logprobs=1)
    lp = out.choices[0].logprobs
    assert len(lp.token_logprobs) == len(ids) + 1 and lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    expected = want[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    assert torch.allclose(torch.tensor(lp.token_logprobs[1:len(ids)]), expected, atol=1e-4)
    for j in range(1, len(ids)):  # the one alternative is the argmax there
        (value,) = lp.top_logprobs[j].values()
        assert value == pytest.approx(want[j - 1].max().item(), abs=1e-4)
    # the generated token follows the prompt, with the logprob of the prompt's last position
    assert lp.token_logprobs[-1] == pytest.approx(want[-1].max().item(), abs=1e-4)
    text = out.choices[0].text
    assert text.startswith(tok.decode(ids, skip_special_tokens=True))
    for token, offset in zip(lp.tokens[1:], lp.text_offset[1:]):  # ASCII: every token's text sits at its offset
        assert text[offset:].startswith(token)


def test_echo_with_a_text_prompt_and_without_logprobs(client):
    c, name = client
    out = c.completions.create(model=name, prompt=PROMPTS, max_tokens=3, temperature=0, echo=True)
    plain = c.completions.create(model=name, prompt=PROMPTS, max_tokens=3, temperature=0)
    assert [ch.text for ch in out.choices] == [p + ch.text for p, ch in zip(PROMPTS, plain.choices)]
    assert all(ch.logprobs is None for ch in out.choices)


def test_text_offsets_hold_across_multibyte_characters(client, local):
    c, name = client
    _, tok = local
    prompt = "héllo wörld €5"
    out = c.completions.create(model=name, prompt=prompt, max_tokens=2, temperature=0, echo=True, logprobs=0)
    lp = out.choices[0].logprobs
    assert out.choices[0].text.startswith(prompt)
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0
    assert all(0 <= o <= len(out.choices[0].text) for o in lp.text_offset)
    assert lp.top_logprobs[1] == {}  # logprobs=0: each token's own logprob, no alternatives


def test_streamed_logprobs_equal_the_non_streamed_ones(client):
    c, name = client
    kw = dict(model=name, prompt=PROMPTS[0], max_tokens=8, temperature=0, logprobs=2)
    whole = c.completions.create(**kw).choices[0]
    tokens, values, offsets, text = [], [], [], ""
    for ch in c.completions.create(stream=True, **kw):
        choice = ch.choices[0]
        text += choice.text
        if choice.logprobs is not None:
            tokens += choice.logprobs.tokens
            values += choice.logprobs.token_logprobs
            offsets += choice.logprobs.text_offset
    assert text == whole.text
    assert tokens == whole.logprobs.tokens and offsets == whole.logprobs.text_offset
    assert values == pytest.approx(whole.logprobs.token_logprobs, abs=1e-6)
    chat = dict(model=name, messages=[{"role": "user", "content": "fox?"}], max_tokens=6, temperature=0,
                logprobs=True, top_logprobs=1)
    want = [t.logprob for t in c.chat.completions.create(**chat).choices[0].logprobs.content]
    got = [t.logprob for ch in c.chat.completions.create(stream=True, **chat)
           if ch.choices and ch.choices[0].logprobs for t in ch.choices[0].logprobs.content]
    assert got == pytest.approx(want, abs=1e-6)


def test_streamed_echo_sends_the_prompt_first(client):
    c, name = client
    chunks = list(c.completions.create(model=name, prompt=PROMPTS[1], max_tokens=3, temperature=0, echo=True,
                                       stream=True))
    assert chunks[0].choices[0].text == PROMPTS[1]


def test_a_token_outside_the_vocabulary_is_refused_and_the_batch_goes_on(served, client, local):
    c, name = client
    _, tok = local
    body = json.dumps({"model": name, "prompt": [[5, 6], [7, tok.vocab_size]], "max_tokens": 2}).encode()
    req = urllib.request.Request(served + "/v1/completions", data=body,
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    error = json.loads(e.value.read())["error"]
    assert e.value.code == 400 and error["param"] == "prompt.1" and "outside the vocabulary" in error["message"]
    assert c.completions.create(model=name, prompt=[5, 6], max_tokens=2).choices[0].text is not None


def test_text_offsets_of_a_byte_level_tokenizer_equal_decoding_every_prefix(local):
    """The linear path (each token's bytes) against the definition (decode each prefix), on code, accents, CJK,
    emoji, and special tokens that decode to nothing."""
    from fronde.serve.text import TextOffsets, text_offsets

    _, tok = local
    text = open(__file__, encoding="utf-8").read()[:3000] + " héllo wörld €5 日本語 🙂 " * 5
    ids = [tok.special.bos] + tok.encode(text) + [tok.special.end] + tok.encode(" fin 🙂")
    assert TextOffsets(tok).byte_level  # the fast path is the one tested
    slow = [7 + len(tok.decode(ids[:i], skip_special_tokens=True).rstrip("\ufffd")) for i in range(3, len(ids))]
    assert text_offsets(tok, ids, start=7, skip=3) == slow
    pushed = TextOffsets(tok, 7)  # a stream's chunks: the same offsets, a few tokens at a time
    assert [o for i in range(0, len(ids), 5) for o in pushed.push(ids[i:i + 5])][3:] == slow
    other = TextOffsets(tok, 7)
    other.byte_level = False  # the path for tokenizers whose tokens are not bytes (decode every prefix)
    assert [o for i in range(0, len(ids), 5) for o in other.push(ids[i:i + 5])][3:] == slow
    assert text_offsets(tok, ids)[-1] == len(tok.decode(ids[:-1], skip_special_tokens=True).rstrip("\ufffd"))


def test_logit_bias_steers_the_reply_and_bad_values_are_refused(served, client, local):
    c, name = client
    model, tok = local
    ids = tok.encode(PROMPTS[0], bos=True)
    with torch.no_grad():
        greedy = int(model(torch.tensor([ids])).logits[0, -1].argmax())
    kw = dict(model=name, prompt=[ids], max_tokens=3, temperature=0, logprobs=0)
    assert c.completions.create(**kw).choices[0].logprobs.tokens[0] == tok.decode([greedy])
    forced = c.completions.create(logit_bias={"42": 100}, **kw).choices[0]
    assert forced.logprobs.tokens == [tok.decode([42])] * 3
    banned = c.completions.create(logit_bias={str(greedy): -100}, **kw).choices[0]
    assert banned.logprobs.tokens[0] != tok.decode([greedy])
    body = {"model": name, "prompt": "x", "max_tokens": 1}
    for extra, param in [({"logit_bias": {"abc": 1}}, "logit_bias"), ({"logit_bias": {"5": 101}}, "logit_bias"),
                         ({"logit_bias": {"999999": 1}}, "logit_bias"), ({"suffix": "end"}, "suffix"),
                         ({"best_of": 3}, "best_of")]:
        req = urllib.request.Request(served + "/v1/completions", data=json.dumps(body | extra).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        assert e.value.code == 400 and json.loads(e.value.read())["error"]["param"] == param, extra


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    return json.loads(urllib.request.urlopen(req).read())


def test_tokenizer_endpoints_as_vllm_and_lm_eval_call_them(served, local):
    """lm-evaluation-harness's remote tokenizer: GET /tokenizer_info (with eos_token), POST /tokenize and
    /detokenize; the chat template it would render with is the one the server applies."""
    from jinja2 import Template

    _, tok = local
    req = urllib.request.Request(served + "/tokenizer_info", headers={"Authorization": f"Bearer {KEY}"})
    info = json.loads(urllib.request.urlopen(req).read())
    assert info["eos_token"] == "<|eos|>" and info["bos_token"] == "<|bos|>" and info["model_max_length"] > 0
    out = _post(served + "/tokenize", {"prompt": "The quick brown fox", "add_special_tokens": False})
    assert out["tokens"] == tok.encode("The quick brown fox") and out["count"] == len(out["tokens"])
    assert _post(served + "/tokenize", {"prompt": "fox"})["tokens"][0] == tok.special.bos
    assert _post(served + "/detokenize", {"tokens": out["tokens"]})["prompt"] == "The quick brown fox"
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "fox?"}]
    chat = _post(served + "/tokenize", {"messages": messages})["tokens"]
    assert chat == tok.render_chat(messages, add_generation_prompt=True)[0]
    rendered = Template(info["chat_template"]).render(messages=messages, add_generation_prompt=True,
                                                      bos_token=info["bos_token"], eos_token=info["eos_token"])
    assert rendered == tok.decode(chat)  # the same text (the server reads a prompt's markers as text, not tokens)
    for body, path in [({"prompt": "a", "messages": messages}, "/tokenize"), ({"tokens": [10**7]}, "/detokenize")]:
        with pytest.raises(urllib.error.HTTPError) as e:
            _post(served + path, body)
        assert e.value.code == 400
