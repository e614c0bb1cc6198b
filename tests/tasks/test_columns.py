"""Column working: every line is a true one-digit fact, and the answer can be read off the lines."""

from __future__ import annotations

import random
import re

import pytest

from fronde.tasks.arithmetic import ArithmeticTask
from fronde.tasks.columns import add_columns, column_working, subtract_columns
from fronde.tasks.extract import format_reward


def _read_off(lines: list[str]) -> int:
    """The value a reader gets from the lines alone: carries chained, digits collected units first."""
    sign = -1 if lines[0].startswith("= -(") else 1
    cols = [re.fullmatch(r"(\d+) ([+-]) (\d) ([+-]) ([01]) = (\d+)", ln) for ln in lines if not ln.startswith("=")]
    assert all(cols), lines
    carry, digits = 0, []
    for i, m in enumerate(cols):
        top, op, bottom, _, c, out = int(m[1]), m[2], int(m[3]), m[4], int(m[5]), int(m[6])
        assert c == carry, f"line {i} takes carry {c}, the previous line left {carry}: {lines}"
        if op == "+":
            assert top < 10 and top + bottom + c == out
            carry = out // 10
            digits.append(str(out) if i == len(cols) - 1 else str(out % 10))
        else:
            assert top - bottom - c == out and 0 <= out <= 9
            carry = int(top > 9)
            digits.append(str(out))
    assert carry == 0 or cols[-1][2] == "+"
    return sign * int("".join(reversed(digits)))


def test_school_examples() -> None:
    assert add_columns(57, 96) == ["7 + 6 + 0 = 13", "5 + 9 + 1 = 15"]
    assert subtract_columns(57, 29) == ["17 - 9 - 0 = 8", "5 - 2 - 1 = 2"]
    assert subtract_columns(100, 1) == ["10 - 1 - 0 = 9", "10 - 0 - 1 = 9", "1 - 0 - 1 = 0"]
    assert column_working(57, "-", 96) == ["= -(96 - 57)", "16 - 7 - 0 = 9", "9 - 5 - 1 = 3"]
    assert column_working(2, "-", -5) == ["= 2 + 5", "2 + 5 + 0 = 7"]
    with pytest.raises(ValueError, match="a >= b"):
        subtract_columns(3, 4)


def test_every_signed_case_reads_off_right() -> None:
    rng = random.Random(0)
    cases = [(a, op, b) for a in (0, 5, -5, 99, -99) for op in "+-" for b in (0, 7, -7, 100, -100)]
    cases += [(rng.randint(-10**6, 10**6), rng.choice("+-"), rng.randint(-10**6, 10**6)) for _ in range(2000)]
    for a, op, b in cases:
        assert _read_off(column_working(a, op, b)) == (a + b if op == "+" else a - b), (a, op, b)


def test_arithmetic_columns_share_is_fixed_and_solutions_stay_correct() -> None:
    plain, mixed, cols = (ArithmeticTask(level=2, columns=c) for c in (0.0, 0.25, 1.0))
    exs = plain.train(400, seed=0)
    shares = [sum(" + 0 = " in t.solution(ex) or " - 0 = " in t.solution(ex) or " + 1 = " in t.solution(ex)
                  or " - 1 = " in t.solution(ex) for ex in exs) / len(exs) for t in (plain, mixed, cols)]
    assert shares[0] == 0.0 and shares[2] == 1.0 and 0.18 < shares[1] < 0.32
    assert [mixed.solution(ex) for ex in exs] == [ArithmeticTask(level=2, columns=0.25).solution(ex) for ex in exs]
    for ex in ArithmeticTask(columns=1.0).test(50):       # all five levels, parentheses and * included
        reply = cols.solution(ex) if ex.meta["level"] == 2 else ArithmeticTask(columns=1.0).solution(ex)
        assert format_reward(reply) == 1.0 and cols.verify(reply, ex) == 1.0
