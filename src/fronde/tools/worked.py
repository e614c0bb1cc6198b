"""Worked solutions rewritten as calculator calls: SFT data that teaches a small model the call format before RL.

An arithmetic problem becomes one call with the problem's expression, then the answer read from its result. A word
problem (GSM-Symbolic) keeps its worked reasoning, cut at every computation it states as `a op b = c`: the model
writes the reasoning up to the expression, calls the calculator with it, reads the result back and goes on
(`= 75 years old. ...`). Only computations the calculator confirms become calls, so no example teaches a call whose
result contradicts the text; a solution with none stays a direct answer (the model also learns that not every
problem needs the tool).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fronde.tasks import Example, Task
from fronde.tasks.extract import parse_number, split_reply
from fronde.tools.calculator import calculate

# the longest run of arithmetic characters before an "=", and the number after it
_EXPR_CHARS = re.compile(r"[\d\s.,+\-*/×x÷()]+$")
_RESULT = re.compile(r"\s*[$€£]?\s*(-?\d[\d,]*(?:\.\d+)?)")
_OPERATOR = re.compile(r"\d\s*[-+*/×x÷]\s*[\d(]")


@dataclass(frozen=True)
class CallPoint:
    end: int  # where the expression ends in the reasoning (the reasoning up to here precedes the call)
    expression: str
    result: str  # the calculator's answer


def call_points(reasoning: str, decimal_comma: bool = False) -> list[CallPoint]:
    """The computations in worked reasoning that the calculator confirms, in order. With `decimal_comma` (French and
    other languages that write 0,5), the call's expression is written with decimal points, as the calculator reads."""
    out = []
    for eq in re.finditer("=", reasoning):
        before = reasoning[:eq.start()]
        m = _EXPR_CHARS.search(before)
        res = _RESULT.match(reasoning, eq.end())
        if not m or not res:
            continue
        first = re.search(r"[\d(]", m.group(0))
        expr = m.group(0)[first.start():].rstrip() if first else ""
        if not _OPERATOR.search(expr) or expr.count("(") != expr.count(")"):
            continue
        if decimal_comma:
            expr = re.sub(r"(\d),(\d)", r"\1.\2", expr)
        try:
            value = calculate(expr)
        except ValueError:
            continue
        stated, got = parse_number(res.group(1), decimal_comma), parse_number(value)
        if stated is None or got is None or stated != got:
            continue
        out.append(CallPoint(len(before.rstrip()), expr, value))
    return out


def _call(expression: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "calculator", "arguments": {"expression": expression}}}


def calculator_conversation(task: Task, example: Example, system: str | None = None
                            ) -> tuple[list[dict[str, Any]], int] | None:
    """(messages, number of calls) solving `example` with calculator calls, or None if the task has no solution.

    The tool schemas are not in the messages: render them with `tools=` (fronde.data.chat puts them in the system
    turn), the same as at inference time."""
    reply = task.solution(example)
    if reply is None:
        return None
    reasoning, answer = split_reply(reply)
    msgs = task.messages(example, system)
    expression = example.meta.get("expression")
    if expression:  # arithmetic: the whole problem is one expression
        value = calculate(expression)
        msgs += [{"role": "assistant", "content": "", "tool_calls": [_call(expression)]},
                 {"role": "tool", "content": value},
                 {"role": "assistant", "reasoning_content": f"= {value}", "content": answer}]
        return msgs, 1
    start = 0
    points = call_points(reasoning, bool(getattr(task, "decimal_comma", False)))
    for p in points:
        msgs += [{"role": "assistant", "reasoning_content": reasoning[start:p.end].strip(), "content": "",
                  "tool_calls": [_call(p.expression)]},
                 {"role": "tool", "content": p.result}]
        start = p.end
    msgs.append({"role": "assistant", "reasoning_content": reasoning[start:].strip(), "content": answer})
    return msgs, len(points)
