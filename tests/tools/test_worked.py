"""Worked solutions as calculator calls: every call is one the calculator confirms, the text reads on from its
result, and the conversations render through the chat template with the tools in the prompt."""

from __future__ import annotations

import pytest

from fronde.data.chat import render_chat
from fronde.data.tokenizer import train_tokenizer
from fronde.tasks import get_task
from fronde.tasks.extract import parse_number
from fronde.tools import Toolbox, load_tools
from fronde.tools.calculator import calculate
from fronde.tools.worked import calculator_conversation, call_points


@pytest.mark.parametrize("level", [1, 3, 5])
def test_arithmetic_is_one_call_with_the_problem_expression(level):
    task = get_task(f"arithmetic:{level}")
    for ex in task.train(20, 0):
        msgs, calls = calculator_conversation(task, ex)
        assert calls == 1
        call = msgs[1]["tool_calls"][0]["function"]
        assert call == {"name": "calculator", "arguments": {"expression": ex.meta["expression"]}}
        assert msgs[2] == {"role": "tool", "content": ex.answer}
        assert msgs[3]["content"] == ex.answer and task.verify(f"<answer>{msgs[3]['content']}</answer>", ex) == 1.0


@pytest.mark.parametrize("lang", ["eng", "fra"])
def test_word_problems_call_the_calculator_at_each_confirmed_step(lang):
    task = get_task(f"gsm-symbolic:{lang}")
    exs = task.train(200, 0)
    with_calls = 0
    for ex in exs:
        msgs, calls = calculator_conversation(task, ex)
        with_calls += calls > 0
        turns = [m for m in msgs if m["role"] == "assistant"]
        results = [m["content"] for m in msgs if m["role"] == "tool"]
        assert len(turns) == calls + 1 and len(results) == calls
        for turn, result, nxt in zip(turns, results, turns[1:]):
            expr = turn["tool_calls"][0]["function"]["arguments"]["expression"]
            assert calculate(expr) == result
            written = turn["reasoning_content"][-len(expr):]  # the reasoning stops where the computation is
            assert written == expr or (lang == "fra" and written.replace(",", ".") == expr)
            stated = nxt["reasoning_content"].lstrip().removeprefix("=").split()[0].strip("$€£.")
            assert parse_number(stated.rstrip(","), task.decimal_comma) == parse_number(result)
        assert turns[-1]["content"] == ex.answer
    assert with_calls >= 0.6 * len(exs), with_calls  # most worked solutions state their computations as a op b = c


def test_call_points_skip_what_the_calculator_does_not_confirm():
    assert [p.expression for p in call_points("He has 3 + 4 = 7 apples, and 2 * 5 = 11 pears.")] == ["3 + 4"]
    assert call_points("25 years * 3= 75 years old") == []  # "3" alone is not a computation
    assert [p.result for p in call_points("Total: (2 + 3) * 4 = $20.")] == ["20"]


def test_tool_conversations_render_with_the_tools_in_the_prompt():
    task = get_task("gsm-symbolic:eng")
    schemas = Toolbox(load_tools(["calculator"])).schemas()
    ex = task.train(1, 0)[0]
    msgs, _ = calculator_conversation(task, ex)
    tok = train_tokenizer([ex.prompt, str(schemas)] * 20, vocab_size=500)
    ids, mask = render_chat(tok, msgs, tools=schemas)
    assert ids.count(tok.special.tool_result) == sum(m["role"] == "tool" for m in msgs)
    assert sum(mask) > 0
