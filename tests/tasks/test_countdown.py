"""Countdown: the safe equation checker against right, wrong and malicious answers; the solver;
generated problems are solvable, deterministic and never in both splits."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest

from fronde.tasks.base import Example, TaskError
from fronde.tasks.countdown import (
    CountdownTask,
    EquationError,
    check_equation,
    evaluate_equation,
    solve,
)
from fronde.tasks.extract import format_reward

NUMBERS = [25, 5, 4, 3]


def test_evaluate_exact() -> None:
    assert evaluate_equation("(6 / 4) * 2") == (Fraction(3), [6, 4, 2])
    assert evaluate_equation("1 / 3 + 1 / 3 + 1 / 3")[0] == 1  # fractions, no float error
    assert evaluate_equation("(25 - 5) * 4 = 80")[0] == 80  # the written result is ignored
    assert evaluate_equation("3 × 4 ÷ 2")[0] == 6


@pytest.mark.parametrize("answer, ok", [
    ("(25 - 5) * 4", True),
    ("4 * (25 - 5)", True),
    ("(25 - 5) * 4 = 80", True),
    ("25 * 4 - 5 * 4", False),  # 4 used twice
    ("(25 - 5) * 4 + 3 - 3", False),  # 3 used twice
    ("(25 - 5) * 4 * 1", False),  # 1 is not given
    ("(26 - 6) * 4", False),  # numbers not given
    ("25 * 3", False),  # wrong value
    ("80", False),  # a number not given
    ("-(5 - 25) * 4", False),  # unary minus
    ("(25.0 - 5) * 4", False),  # decimals
    ("__import__('os').system('echo hi')", False),
    ("2**1000000", False),
    ("(25 - 5) * 4 + 0**2", False),
    ("x * 4", False),
    ("abs(-80)", False),
    ("(25).real * 4", False),
    ("25 / (5 - 5)", False),  # division by zero
    ("(" * 150 + "25" + ")" * 150, False),  # too long
    ("", False),
])
def test_check_equation(answer: str, ok: bool) -> None:
    assert check_equation(answer, NUMBERS, 80) is ok


def test_malicious_equations_are_rejected_quickly() -> None:
    start = time.monotonic()
    for bad in ["2**1000000", "9**9**9**9", "__import__('os')", "[1]*10**9", "lambda: 1"]:
        assert not check_equation(bad, [2, 9, 1], 4)
        with pytest.raises(EquationError):
            evaluate_equation(bad)
    assert time.monotonic() - start < 1.0


def test_exactly_once() -> None:
    assert check_equation("(25 - 5) * 4", NUMBERS, 80)
    assert not check_equation("(25 - 5) * 4", NUMBERS, 80, exactly_once=True)
    assert check_equation("(25 - 5) * 4 * (3 / 3)", NUMBERS + [3], 80, exactly_once=True)


def test_solve() -> None:
    for numbers, target in [([25, 5, 4, 3], 80), ([3, 7, 25], 46), ([1, 2, 3, 4], 24), ([6, 4, 2], 3)]:
        eq = solve(numbers, target)
        assert eq is not None and check_equation(eq, numbers, target), (numbers, target, eq)
    assert solve([1, 1], 100) is None
    eq = solve([2, 3, 4], 20, exactly_once=True)
    assert eq is not None and check_equation(eq, [2, 3, 4], 20, exactly_once=True)


def test_verify_answer_formats() -> None:
    task = CountdownTask()
    ex = Example(id="c", task="countdown", prompt="", answer="(25 - 5) * 4", meta={"numbers": NUMBERS, "target": 80})
    assert task.verify("<think>try</think><answer>(25 - 5) * 4</answer>", ex) == 1.0
    assert task.verify("<|answer|>4 * (25 - 5)<|/answer|>", ex) == 1.0
    assert task.verify("\\boxed{(25 - 5) * 4}", ex) == 1.0
    assert task.verify("<answer>25 * 4 - 5 * 4</answer>", ex) == 0.0
    assert task.verify("(25 - 5) * 4", ex) == 0.0  # the equation must be marked as the answer
    assert task.verify("<answer>__import__('os').system('id')</answer>", ex) == 0.0


def test_generated_problems() -> None:
    task = CountdownTask()
    examples = task.test(100) + task.train(100, seed=0)
    for ex in examples:
        numbers, target = ex.meta["numbers"], ex.meta["target"]
        assert 3 <= len(numbers) <= 4 and all(1 <= x <= 100 for x in numbers)
        assert target not in numbers and 1 <= target <= 1000
        assert check_equation(ex.answer, numbers, target)  # the construction is a valid answer
        reply = task.solution(ex)
        assert reply is not None and task.verify(reply, ex) == 1.0 and format_reward(reply) == 1.0
        assert str(numbers) in ex.prompt and str(target) in ex.prompt


def test_determinism_and_disjointness() -> None:
    a, b = CountdownTask(), CountdownTask()
    assert a.train(200, seed=1) == b.train(200, seed=1)
    assert a.train(50, seed=1) != a.train(50, seed=2)
    assert a.test() == b.test() and len(a.test()) == 500
    keys = {(tuple(sorted(ex.meta["numbers"])), ex.meta["target"]) for ex in a.test()}
    for seed in range(3):
        train = a.train(3000, seed=seed)
        assert not {ex.id for ex in train} & {ex.id for ex in a.test()}
        assert not {(tuple(sorted(ex.meta["numbers"])), ex.meta["target"]) for ex in train} & keys


def test_options() -> None:
    task = CountdownTask(min_numbers=4, max_numbers=4, exactly_once=True, test_size=20)
    for ex in task.test():
        assert len(ex.meta["numbers"]) == 4
        assert check_equation(ex.answer, ex.meta["numbers"], ex.meta["target"], exactly_once=True)
        assert "exactly once" in ex.prompt
    with pytest.raises(TaskError, match="min_numbers"):
        CountdownTask(min_numbers=5, max_numbers=3)
    with pytest.raises(TaskError, match="options:"):
        CountdownTask(numbers=3)
