"""Arithmetic: levels, exact answers, determinism and train/test disjointness."""

from __future__ import annotations

import re

import pytest

from fronde.tasks.arithmetic import LEVELS, ArithmeticTask
from fronde.tasks.base import TaskError
from fronde.tasks.extract import format_reward


def _python_value(expr: str) -> int:
    assert re.fullmatch(r"[0-9+\-* ()]+", expr)  # only our own generated digits and operators
    return eval(expr)  # an independent check of the task's exact evaluator


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_levels_and_exact_answers(level: int) -> None:
    task = ArithmeticTask(level=level)
    examples = task.test(50) + task.train(50, seed=3)
    for ex in examples:
        expr = ex.meta["expression"]
        assert ex.prompt == f"What is {expr}?"
        assert int(ex.answer) == _python_value(expr)
        assert len(re.findall(r"\d+", expr)) == LEVELS[level].operands
        assert max(len(n) for n in re.findall(r"\d+", expr)) <= LEVELS[level].digits
        assert ("(" in expr) == LEVELS[level].parens
        if "*" in expr:
            assert "*" in LEVELS[level].ops


def test_deterministic_for_a_seed() -> None:
    a, b = ArithmeticTask(), ArithmeticTask()
    assert a.train(100, seed=7) == b.train(100, seed=7)
    assert a.train(100, seed=7) != a.train(100, seed=8)
    assert a.test() == b.test() == a.test()
    assert a.test(10) == a.test()[:10]
    assert {ex.meta["level"] for ex in a.test(5)} == set(LEVELS)  # the mixed split interleaves levels


@pytest.mark.parametrize("level", [None, 1, 5])
def test_train_never_in_test(level: int | None) -> None:
    task = ArithmeticTask(level=level)
    all_tests = ArithmeticTask().test()  # every level's test split
    test_ids = {ex.id for ex in all_tests}
    test_prompts = {ex.prompt for ex in all_tests}
    for seed in range(3):
        train = task.train(2000, seed=seed)
        assert not {ex.id for ex in train} & test_ids
        assert not {ex.prompt for ex in train} & test_prompts


def test_verify_and_solution() -> None:
    task = ArithmeticTask(level=5)
    for ex in task.test(20):
        reply = task.solution(ex)
        assert format_reward(reply) == 1.0
        assert task.verify(reply, ex) == 1.0
        assert reply.count("\n= ") == LEVELS[5].operands - 1  # one step per operation
        assert task.verify(f"<answer>{int(ex.answer) + 1}</answer>", ex) == 0.0
    ex = task.test(1)[0]
    assert task.verify(f"It is {ex.answer}", ex) == 1.0
    assert task.verify("no idea", ex) == 0.0


def test_bad_level() -> None:
    with pytest.raises(TaskError, match="level"):
        ArithmeticTask(level=9)


def test_french_questions_are_the_english_problems() -> None:
    """`arithmetic:1:fra` asks the same problems in French, with the same answers, solutions and splits, under ids
    of its own (so a mix of both languages keeps both)."""
    eng, fra = ArithmeticTask(level=1), ArithmeticTask(level=1, language="fra")
    for e, f in zip(eng.test(20) + eng.train(20, seed=5), fra.test(20) + fra.train(20, seed=5)):
        assert f.prompt == f"Combien font {e.meta['expression']} ?" and e.prompt == f"What is {e.meta['expression']}?"
        assert (f.answer, f.meta, eng.solution(e)) == (e.answer, e.meta, fra.solution(f))
        assert f.id != e.id and f.id.startswith("arithmetic:fra/") and f.task == "arithmetic:1:fra"
        assert fra.verify(f"<answer>{f.answer}</answer>", f) == 1.0
    assert not {ex.id for ex in fra.train(300, seed=1)} & {ex.id for ex in fra.test()}
