"""Multi-turn episodes: token for token the conversation the chat template renders, tool results masked, and every
way a model can misuse a tool answered with an error result instead of an exception."""

from __future__ import annotations

import json

import pytest

from fronde.data.chat import render_chat
from fronde.data.tokenizer import train_tokenizer
from fronde.tools import Toolbox, load_tools, tool
from fronde.tools.calls import parse_call_text, parse_calls
from fronde.tools.episode import final_text, run_episodes

ASK = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture(scope="module")
def box():
    return Toolbox(load_tools(["calculator"]))


@pytest.fixture(scope="module")
def tok(box):
    text = 'What is 2 + 3? {"name": "calculator", "arguments": {"expression": "2 + 3"}} = 5 error unknown tool'
    return train_tokenizer([text, json.dumps(box.schemas(), ensure_ascii=False)] * 100, vocab_size=600)


def call_ids(tok, text: str) -> list[int]:
    sp = tok.special
    return [sp.tool_call, *tok.encode(text), sp.tool_call_end, sp.end]


def answer_ids(tok, reasoning: str, answer: str) -> list[int]:
    sp = tok.special
    return [sp.think, *tok.encode(reasoning), sp.think_end, sp.answer, *tok.encode(answer), sp.answer_end, sp.end]


class Script:
    """Generation that plays a fixed list of turns: turn k of every episode is turns[k]."""

    def __init__(self, turns: list[list[int]], ended: bool = True) -> None:
        self.turns, self.ended, self.contexts = turns, ended, []

    def __call__(self, contexts, max_new_tokens, seed):
        self.contexts.append(contexts)
        k = len(self.contexts) - 1
        return [(list(self.turns[min(k, len(self.turns) - 1)]), self.ended) for _ in contexts]


def test_an_episode_is_the_rendered_conversation_with_tool_results_masked(tok, box):
    call = '{"name": "calculator", "arguments": {"expression": "2 + 3"}}'
    prompt, _ = render_chat(tok, ASK, tools=box.schemas(), add_generation_prompt=True)
    script = Script([call_ids(tok, call), answer_ids(tok, "= 5", "5")])
    (ep,) = run_episodes(script, tok, [prompt], box, max_turns=4, max_new_tokens=40, max_len=512)
    assert ep.stop == "answer" and ep.finished and ep.turns == 2 and ep.tool_calls == 1 and ep.tool_errors == 0
    messages = ASK + [
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
            "name": "calculator", "arguments": {"expression": "2 + 3"}}}]},
        {"role": "tool", "content": "5"},
        {"role": "assistant", "reasoning_content": "= 5", "content": "5"}]
    ids, mask = render_chat(tok, messages, tools=box.schemas())
    assert prompt + ep.ids == ids
    assert ep.mask == mask[len(prompt):]  # the tool result and the next <|assistant|> are not the model's
    assert 0 in ep.mask and ep.transcript == [{"name": "calculator", "arguments": '{"expression": "2 + 3"}',
                                               "result": "5"}]
    assert final_text(tok, ep, [tok.special.end]) == "<|think|>= 5<|/think|><|answer|>5<|/answer|>"
    assert script.contexts[1] == [prompt + ep.ids[:ep.ids.index(tok.special.assistant) + 1]]


@pytest.mark.parametrize("text, error", [
    ('{"name": "calculator", "arguments": {"expression": "2 +', "not valid JSON"),
    ('{"name": "weather", "arguments": {}}', "unknown tool"),
    ('{"name": "calculator", "arguments": {"expr": "2 + 3"}}', "expression"),
    ('{"name": "calculator", "arguments": {"expression": "2 / 0"}}', "zero"),
    ('[1, 2]', "JSON object"),
])
def test_a_bad_call_comes_back_as_an_error_result(tok, box, text, error):
    prompt, _ = render_chat(tok, ASK, tools=box.schemas(), add_generation_prompt=True)
    script = Script([call_ids(tok, text), answer_ids(tok, "= 5", "5")])
    (ep,) = run_episodes(script, tok, [prompt], box, max_turns=3, max_new_tokens=40, max_len=512)
    assert ep.stop == "answer" and ep.tool_calls == 1 and ep.tool_errors == 1
    result = ep.transcript[0]["result"]
    assert result.startswith("error: ") and error in result, result
    assert tok.decode(script.contexts[1][0]).count(result) == 1  # the model reads the error as the tool's result


def test_turn_limit_context_limit_and_a_cut_turn(tok, box):
    call = '{"name": "calculator", "arguments": {"expression": "1 + 1"}}'
    prompt, _ = render_chat(tok, ASK, tools=box.schemas(), add_generation_prompt=True)
    eps = run_episodes(Script([call_ids(tok, call)]), tok, [prompt, prompt], box, max_turns=3, max_new_tokens=40,
                       max_len=512)
    assert [e.stop for e in eps] == ["max_turns"] * 2 and eps[0].turns == 3 and eps[0].tool_calls == 3
    assert eps[0].ids[-1] == tok.special.end and eps[0].mask[-1] == 1  # ends on the model's turn, no dangling result
    (ep,) = run_episodes(Script([call_ids(tok, call)]), tok, [prompt], box, max_turns=10, max_new_tokens=40,
                         max_len=len(prompt) + 150)
    assert ep.stop == "length" and ep.turns < 10
    (ep,) = run_episodes(Script([call_ids(tok, call)], ended=False), tok, [prompt], box, max_turns=3,
                         max_new_tokens=40, max_len=512)
    assert ep.stop == "length" and ep.turns == 1 and ep.tool_calls == 0  # a cut turn's calls do not run


def test_a_hanging_user_tool_is_killed_and_reported(tok):
    import time

    @tool(timeout_s=1.0)
    def wait(seconds: int) -> str:
        """Waits."""
        time.sleep(seconds)
        return "done"

    box = Toolbox([wait])
    prompt, _ = render_chat(tok, ASK, tools=box.schemas(), add_generation_prompt=True)
    start = time.perf_counter()
    (ep,) = run_episodes(Script([call_ids(tok, '{"name": "wait", "arguments": {"seconds": 100}}'),
                                 answer_ids(tok, "", "5")]), tok, [prompt], box, 3, 40, 512)
    assert time.perf_counter() - start < 20
    assert ep.stop == "answer" and ep.tool_errors == 1 and "timed out" in ep.transcript[0]["result"]


def test_parse_call_text_recovers_what_it_can():
    ok = parse_call_text('{"name": "calculator", "arguments": {"expression": "1+1"}}')
    assert ok.error is None and ok.arguments == {"expression": "1+1"}
    as_string = parse_call_text(json.dumps({"name": "f", "arguments": '{"a": 1}'}))
    assert as_string.error is None and as_string.arguments == {"a": 1}
    broken = parse_call_text('{"name": "calculator", "arguments": {"expression": "1+}')
    assert broken.name == "calculator" and "not valid JSON" in broken.error
    assert broken.arguments_json == '{"expression": "1+'
    nameless = parse_call_text("calculator 1+1")
    assert nameless.name is None and nameless.error
    # what sampling at temperature 1 wrote in a GRPO rollout: a raw newline, then a bad escape, in the name
    for raw, name in (('{"name": "calcu\nlator", "arguments": {"expression": "1+}', "calcu\nlator"),
                      ('{"name": "calc\\xulator", "arguments": 1+1}', "calc\\xulator")):
        odd = parse_call_text(raw)
        assert odd.name == name and "not valid JSON" in odd.error


def test_parse_calls_reads_only_closed_calls(tok):
    sp = tok.special
    ids = (tok.encode("x") + [sp.tool_call] + tok.encode('{"name": "a", "arguments": {}}') + [sp.tool_call_end]
           + [sp.tool_call] + tok.encode('{"name": "b"'))
    calls = parse_calls(tok, ids)
    assert [c.name for c in calls] == ["a"]


def test_calls_of_many_episodes_to_a_waiting_tool_run_side_by_side(tok):
    # a GRPO step's episodes each call a tool that waits (the sandboxed python: ~50 ms a call): the calls of one
    # turn run on threads together (each call here waits at a barrier for its partner: run one by one, they would
    # time out); every episode still gets its own result, in order
    import os
    import threading

    parties = min(2, os.cpu_count() or 1)
    barrier = threading.Barrier(parties, timeout=10)

    def echo(text: str) -> str:
        """Wait for a partner call, then answer with the text."""
        barrier.wait()
        return text.upper()

    waiting = Toolbox([tool(echo, isolate=False, concurrent=True)])
    assert waiting.concurrent("echo") and not Toolbox([tool(echo)]).concurrent("echo")  # isolated: one by one
    prompts = [[tok.special.bos, *tok.encode(f"ask {i}")] for i in range(4)]

    def generate(contexts, max_new_tokens, seed):
        outs = []
        for ctx in contexts:
            if tok.special.tool_result in ctx:
                outs.append((answer_ids(tok, "done", "ok"), True))
            else:
                word = tok.decode(ctx[1:]).split()[-1]
                outs.append((call_ids(tok, json.dumps({"name": "echo", "arguments": {"text": f"w{word}"}})), True))
        return outs

    eps = run_episodes(generate, tok, prompts, waiting, max_turns=3, max_new_tokens=40, max_len=512)
    assert [ep.transcript[0]["result"] for ep in eps] == ["W0", "W1", "W2", "W3"]
    assert all(ep.stop == "answer" and ep.tool_errors == 0 for ep in eps)
