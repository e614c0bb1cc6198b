"""Answer extraction, number reading and the format reward on messy, hand-written replies."""

from __future__ import annotations

from fractions import Fraction

import pytest

from fronde.tasks.extract import (
    extract_answer,
    extract_tagged,
    format_reward,
    normalize_number,
    parse_number,
    split_reply,
)


@pytest.mark.parametrize("text, expected", [
    ("<think>6 * 7</think><answer>42</answer>", "42"),
    ("<|think|>6 * 7<|/think|><|answer|>42<|/answer|>", "42"),
    ("<answer> 42 </answer>\nHope this helps! Also 7 and 8.", "42"),  # text after the answer
    ("<answer>1</answer> no wait <|answer|>2<|/answer|>", "2"),  # the last block wins, either spelling
    ("<answer>The total is \\boxed{17}</answer>", "17"),
    ("so the result is \\boxed{\\frac{3}{4}} and then 9", "\\frac{3}{4}"),  # nested braces
    ("She pays 5 + 7 = 12 dollars.\n#### 12\nDone, 99 words.", "12"),
    ("Adding up, the answer is $1,250. I checked 3 times.", "1,250"),
    ("Donc la réponse est 3,5 litres.", "3,5"),
    ("Final answer: 18", "18"),
    ("First 3 apples, then 4, so 7 apples.", "7"),  # last number
    ("<think>maybe the answer is 5</think> after checking: 6", "6"),  # a draft in the reasoning loses
    ("<answer>42", "42"),  # an unclosed block falls through to the last number
])
def test_extract_answer(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


def test_extract_nothing() -> None:
    assert extract_answer("no digits here") is None
    assert extract_answer("") is None
    assert extract_tagged("just 12 and 13") is None  # no explicit marker: not for text verifiers


@pytest.mark.parametrize("s, decimal_comma, expected", [
    ("42", False, 42), ("-7", False, -7), ("−3", False, -3), ("42.", False, 42),
    ("$1,234.50", False, Fraction("1234.5")), ("75%", False, 75), ("\\$18", False, 18),
    ("3/4", False, Fraction(3, 4)), ("\\frac{3}{4}", False, Fraction(3, 4)), ("\\dfrac{10}{4}", False, Fraction(5, 2)),
    ("3,5", False, Fraction(7, 2)), ("3,5", True, Fraction(7, 2)),  # a French decimal comma
    ("1,000", False, 1000), ("1,000", True, 1), ("0,500", False, Fraction(1, 2)), ("2,000,000", False, 2_000_000),
    ("1 234,5", True, Fraction("1234.5")), ("1.234.567,8", False, Fraction("1234567.8")),
    ("12.345", False, Fraction("12.345")), ("12.345", True, 12345),  # French thousands dot
    ("3.14159", False, Fraction("3.14159")), ("x = 5", False, 5), ("12 apples", False, 12),
    ("98765432109876543210", False, 98765432109876543210),  # exact, no float rounding
])
def test_parse_number(s: str, decimal_comma: bool, expected: Fraction | int) -> None:
    assert parse_number(s, decimal_comma) == expected


def test_normalize_number() -> None:
    assert normalize_number("$1,234.50") == 1234.5
    assert normalize_number("3,5") == 3.5
    assert normalize_number("3/4") == 0.75
    assert normalize_number("25%") == 25.0
    assert normalize_number("forty-two") is None
    assert normalize_number(None) is None
    assert normalize_number("1/0") is None


@pytest.mark.parametrize("text, reward", [
    ("<think>a</think><answer>5</answer>", 1.0),
    ("  <think>\nsteps\n</think>\n\n<answer> 5 </answer>\n  ", 1.0),
    ("<|think|>a<|/think|><|answer|>5<|/answer|>", 1.0),
    ("<think>a</think><answer>5</answer> and more", 0.5),  # text after the answer
    ("<answer>5</answer>", 0.5),  # answer block only
    ("<think>a</think><answer></answer>", 0.5),  # empty answer
    ("<think>a</think><answer>5</answer><answer>6</answer>", 0.5),
    ("<think>a <answer>4</answer></think><answer>5</answer>", 0.5),  # tags nested in the reasoning
    ("<think>a</think> 5", 0.0),
    ("<think>a</think><answer>5", 0.0),
    ("The answer is 5.", 0.0),
])
def test_format_reward(text: str, reward: float) -> None:
    assert format_reward(text) == reward


def test_split_reply() -> None:
    assert split_reply("<think> r </think>\n<answer> 7 </answer>") == ("r", "7")
    assert split_reply("<answer>7</answer>") == ("", "7")
    assert split_reply("plain 7") == ("", "plain 7")
