"""The endpoint evaluator against fronde's own server on 127.0.0.1 (a real uvicorn server, the official openai
client): greedy replies, scores and log-likelihoods (through `echo`) equal the local fronde evaluator's; a
vLLM-style echo response is parsed right."""

from __future__ import annotations

import json

import pytest

from fronde.eval import (
    EvalError,
    EvalPlan,
    GenerationSettings,
    load_eval_model,
    run_plan,
)
from fronde.eval.endpoint_model import parse_echo
from fronde.eval.results import stable_view
from fronde.serve.app import ServerConfig
from tests.serve.test_server import _start

KEY = "sk-eval-test"
QUESTIONS = [f"What is {a} + {b}?" for a, b in [(1, 2), (12, 7), (30, 4), (5, 5), (61, 37), (8, 90)]]


@pytest.fixture(scope="module")
def server(tiny_dir):
    url, _, srv, thread = _start(ServerConfig(tiny_dir, api_keys=(KEY,), max_batch=4))
    yield url + "/v1"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def local(tiny_dir):
    return load_eval_model(str(tiny_dir), batch_size=4)


def test_endpoint_generation_and_scores_equal_the_local_evaluator(server, local, tiny_dir, tmp_path):
    remote = load_eval_model(endpoint=server, model=tiny_dir.name, api_key=KEY, batch_size=3)
    convs = [[{"role": "user", "content": q}] for q in QUESTIONS]
    mine = local.generate(convs, max_new_tokens=12)
    theirs = remote.generate(convs, max_new_tokens=12)
    assert theirs == mine
    assert remote.last_speed.generated_tokens == local.last_speed.generated_tokens  # usage agrees with the engine
    # A task whose answers are the local replies for half the questions: a score that is neither 0 nor 100.
    rows = [{"prompt": q, "answer": reply if i % 2 == 0 else "never said", "split": "test", "id": f"q{i}"}
            for i, (q, reply) in enumerate(zip(QUESTIONS, mine))]
    task_file = tmp_path / "echo.jsonl"
    task_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = EvalPlan(tasks=[str(task_file)], generation=GenerationSettings(n=None, max_new_tokens=12))
    a = run_plan(local, plan, tmp_path / "local")[0]
    b = run_plan(remote, plan, tmp_path / "remote")[0]
    assert a["metrics"] == b["metrics"] and a["metrics"]["accuracy"] == 50.0
    assert [r["outputs"] for r in a["examples"]] == [r["outputs"] for r in b["examples"]]
    assert a["dataset"] == b["dataset"]
    assert stable_view(a)["settings"] == stable_view(b)["settings"]
    assert b["model"]["kind"] == "endpoint" and a["speed"]["ttft_s_p50"] is not None


def test_endpoint_loglikelihoods_equal_the_local_evaluator(server, local, tiny_dir):
    """fronde serve echoes the prompt's logprobs, so multiple choice and bits per byte work through it."""
    remote = load_eval_model(endpoint=server, model=tiny_dir.name, api_key=KEY)
    for context, continuation in [("Question: 1 + 1?\nAnswer:", " 2"), ("The sum of 12 and 7 is", " 19.")]:
        mine, theirs = local.loglikelihood(context, continuation), remote.loglikelihood(context, continuation)
        assert theirs[1:] == mine[1:] and theirs[0] == pytest.approx(mine[0], abs=1e-3)
    text = "What is 30 + 4? It is 34, and 5 + 5 is 10."
    mine, theirs = local.loglikelihood_rolling(text), remote.loglikelihood_rolling(text)
    assert theirs[1] == mine[1] and theirs[0] == pytest.approx(mine[0], abs=1e-3)


def test_a_text_longer_than_the_served_context_is_scored_in_windows(tiny_dir, local):
    """`fronde eval URL --bpb` on documents longer than the server's context (vLLM refuses such a prompt with a
    400): the text is tokenized by the server's /tokenize and scored in windows of its context, as locally."""
    from fronde.eval.likelihood import score_rolling

    url, _, srv, thread = _start(ServerConfig(tiny_dir, max_batch=2, max_model_len=48))
    try:
        remote = load_eval_model(endpoint=url + "/v1")
        text = " ".join(QUESTIONS * 4)  # ~150 tokens: three windows of 46 predictions and a rest
        ids = local.tok.encode(text, bos=True)
        assert len(ids) > 3 * 48
        total, count = remote.loglikelihood_rolling(text)
        expected = score_rolling(local._forward, ids, 46)
        assert count == expected[1] == len(ids) - 1
        assert total == pytest.approx(expected[0], abs=1e-3)
        with pytest.raises(EvalError, match="context"):  # one prompt past the context is still the server's error
            remote.loglikelihood(text, " 34")
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_endpoint_errors_say_what_to_fix(server, tiny_dir):
    with pytest.raises(EvalError, match="--api-key"):
        load_eval_model(endpoint=server, model=tiny_dir.name, api_key="wrong").generate(
            [[{"role": "user", "content": "hi"}]], 4)
    with pytest.raises(EvalError, match="not found.*lists what the server serves"):
        load_eval_model(endpoint=server, model="no-such-model", api_key=KEY).generate(
            [[{"role": "user", "content": "hi"}]], 4)
    with pytest.raises(EvalError, match="--api-key"):  # listing the served models needs the key too
        load_eval_model(endpoint=server)


def test_the_url_alone_names_the_endpoint_and_its_one_served_model(server, tiny_dir):
    """`fronde eval URL` like `fronde agent URL`: the server serves one model, so --model is not needed."""
    remote = load_eval_model(server, api_key=KEY)
    assert remote.model == remote.name == tiny_dir.name and remote.info.kind == "endpoint"
    assert remote.generate([[{"role": "user", "content": "What is 1 + 2?"}]], 4)[0]
    with pytest.raises(EvalError, match="either a MODEL"):
        load_eval_model(str(tiny_dir), endpoint=server)


def test_parse_echo_reads_a_vllm_style_response():
    # prompt "Answer: Paris" echoed as 3 tokens, then one generated token at offset 13
    logprobs = {"tokens": ["Answer", ":", " Paris", "."], "token_logprobs": [None, -0.5, -1.25, -0.1],
                "text_offset": [0, 6, 7, 13],
                "top_logprobs": [None, {":": -0.5}, {" London": -1.0, " Paris": -1.25}, {".": -0.1}]}
    assert parse_echo(logprobs, 7, 13) == (-1.25, 1, False)  # London was likelier: not greedy
    assert parse_echo(logprobs, 0, 13) == (-1.75, 2, False)  # the first token has no logprob
    with pytest.raises(EvalError, match="no token"):
        parse_echo(logprobs, 13, 13)
