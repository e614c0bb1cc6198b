"""Pulling the final answer out of a model's reply, reading numbers the way people write them, and
scoring the think/answer layout.

Models under RL write answers in many shapes: fronde's `<|answer|>` special tokens or plain
`<answer>` tags, LaTeX `\\boxed{}`, GSM8K's `#### 42`, "the answer is 42", or just a last number.
`extract_answer` tries them in that order, so a well-formatted answer always wins over a number
that happens to come later. Numbers are compared exactly (as Fractions) where it matters, so
large integers from the arithmetic task never lose precision in a float.
"""

from __future__ import annotations

import re
from fractions import Fraction

# Each tag in both spellings: fronde's special tokens and plain XML-like tags.
_ANY_TAG = re.compile(r"</?(?:think|answer)>|<\|/?(?:think|answer)\|>")
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>|<\|answer\|>(.*?)<\|/answer\|>", re.DOTALL)
_FULL_REPLY = re.compile(r"\s*(?:<think>(.*?)</think>|<\|think\|>(.*?)<\|/think\|>)\s*"
                         r"(?:<answer>(.*?)</answer>|<\|answer\|>(.*?)<\|/answer\|>)\s*", re.DOTALL)
_THINK_BLOCK = re.compile(r"(?:<think>|<\|think\|>).*?(?:</think>|<\|/think\|>)", re.DOTALL)
_HASHES = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(r"(?:final answer|answer|réponse(?: finale)?|resultat|résultat)\s*(?:is|est|:|=)\s*:?"
                        r"([^\n]+)", re.IGNORECASE)

# A number as written in text: 1,234,567.8 / 1.234.567,8 / 3.5 / 3,5 / .5 / -7 / 3/4. A thousands
# group is exactly three digits not followed by another digit, so 3.14159 stays one decimal.
NUMBER = (r"[-−+]?(?:\d{1,3}(?:,\d{3}(?!\d))+(?:\.\d+)?|\d{1,3}(?:\.\d{3}(?!\d))+(?:,\d+)?"
          r"|\d+(?:[.,]\d+)?|\.\d+)(?:\s*/\s*\d+)?")
_NUMBER = re.compile(NUMBER)
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}")
_LATEX_TEXT = re.compile(r"\\(?:text|mathrm|textbf|mbox)\s*\{[^{}]*\}")
_DIGIT_SPACE = re.compile(r"(?<=\d)[ \u00a0\u202f\u2009'](?=\d{3}(?!\d))")


def answer_block(text: str) -> str | None:
    """The content of the last closed `<answer>` block (either spelling), or None."""
    last = None
    for last in _ANSWER_BLOCK.finditer(text):
        pass
    if last is None:
        return None
    return last.group(1) if last.group(1) is not None else last.group(2)


def strip_think(text: str) -> str:
    """The reply without its think blocks, so drafts in the reasoning are not taken for the answer."""
    return _THINK_BLOCK.sub("", text)


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced, or None."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    return None


def _lead(rest: str) -> str:
    """The answer at the start of a "the answer is ..." remainder: its first number, else up to the first stop."""
    m = re.match(r"\s*[$€£\\(\s]*(" + NUMBER + ")", rest)
    if m:
        return m.group(1)
    return re.split(r"\.\s|;|\n", rest.strip(), maxsplit=1)[0].strip().rstrip(".")


def _marked(text: str) -> str | None:
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    hashes = _HASHES.findall(text)
    if hashes:
        return hashes[-1].strip()
    said = _ANSWER_IS.findall(text)
    return _lead(said[-1]) if said else None


def extract_tagged(text: str) -> str | None:
    """The answer the reply marks explicitly (answer block, boxed, ####, "answer is"), or None.

    Used alone by verifiers whose answers are not numbers, where "the last number" would be wrong.
    """
    block = answer_block(text)
    if block is not None:
        inner = last_boxed(block)
        return (inner if inner is not None else block).strip()
    outside = strip_think(text)
    found = _marked(outside)
    return found if found is not None or outside == text else _marked(text)


def extract_answer(text: str) -> str | None:
    """The final answer in a reply: last answer block, then \\boxed, ####, "answer is", last number.

    The text after the think block is searched first, so a draft answer in the reasoning does not
    win over the final one; the reasoning itself only when nothing follows it.
    """
    block = answer_block(text)
    if block is not None:
        inner = last_boxed(block)
        return (inner if inner is not None else block).strip()
    for source in dict.fromkeys([strip_think(text), text]):
        found = _marked(source)
        if found is not None:
            return found
        numbers = _NUMBER.findall(source)
        if numbers:
            return numbers[-1].strip()
    return None


def _parse_token(token: str, decimal_comma: bool) -> Fraction | None:
    token = token.replace("−", "-").replace(" ", "").lstrip("+")
    if "/" in token:
        num, _, den = token.partition("/")
        a, b = _parse_token(num, decimal_comma), _parse_token(den, decimal_comma)
        return a / b if a is not None and b else None
    sign = "-" if token.startswith("-") else ""
    body = token.lstrip("-")
    if "," in body and "." in body:
        dec = "," if body.rfind(",") > body.rfind(".") else "."
        body = body.replace("." if dec == "," else ",", "").replace(",", ".")
    elif "," in body:
        left, _, right = body.rpartition(",")
        thousands = body.count(",") > 1 or (not decimal_comma and len(right) == 3 and left.lstrip("0") != "")
        body = body.replace(",", "") if thousands else body.replace(",", ".")
    elif body.count(".") > 1 or (decimal_comma and re.fullmatch(r"[1-9]\d{0,2}\.\d{3}", body)):
        body = body.replace(".", "")  # 1.234.567, or 12.345 where a comma is the decimal mark
    try:
        return Fraction(sign + body)
    except (ValueError, ZeroDivisionError):
        return None


def parse_number(s: str | None, decimal_comma: bool = False) -> Fraction | None:
    """An answer string as an exact number, or None if it holds none.

    Accepts `$1,234.50`, `75%`, `42.`, `3/4`, `\\frac{3}{4}`, `1 234,5`, and `3,5` (a decimal comma
    when unambiguous: a comma followed by exactly three digits is a thousands separator unless
    `decimal_comma`, which also reads `12.345` as twelve thousand). Several numbers: the last wins.
    """
    if s is None:
        return None
    s = _LATEX_FRAC.sub(r"(\1)/(\2)", s)
    s = _LATEX_TEXT.sub(" ", s)
    s = s.replace("{,}", ",").replace("\\,", "").replace("\\!", "").replace("\\ ", " ").replace("~", " ")
    s = re.sub(r"\\?[$€£¥%]", " ", s)
    s = _DIGIT_SPACE.sub("", s)
    m = re.fullmatch(r"\s*\(?\s*(" + NUMBER + r")\s*\)?\s*/\s*\(?\s*(" + NUMBER + r")\s*\)?\s*", s)
    if m:  # a LaTeX fraction rewritten above, or a spaced-out a / b
        a, b = _parse_token(m.group(1), decimal_comma), _parse_token(m.group(2), decimal_comma)
        return a / b if a is not None and b else None
    numbers = _NUMBER.findall(s)
    return _parse_token(numbers[-1], decimal_comma) if numbers else None


def normalize_number(s: str | None, decimal_comma: bool = False) -> float | None:
    """`parse_number` as a float (see there for what is accepted)."""
    x = parse_number(s, decimal_comma)
    return float(x) if x is not None else None


def numbers_match(predicted: Fraction | None, reference: Fraction, rel_tol: float = 1e-6) -> bool:
    """Exact for integers; relative tolerance for decimals that were rounded somewhere."""
    if predicted is None:
        return False
    if predicted == reference:
        return True
    if reference.denominator == 1 and predicted.denominator == 1:
        return False
    return abs(predicted - reference) <= rel_tol * max(1, abs(reference))


def format_reward(text: str) -> float:
    """1.0 for `<think>...</think><answer>...</answer>` (either spelling, whitespace only around and
    after), 0.5 when only a closed answer block is present, else 0.0."""
    m = _FULL_REPLY.fullmatch(text)
    if m:
        think = m.group(1) if m.group(1) is not None else m.group(2)
        answer = m.group(3) if m.group(3) is not None else m.group(4)
        if not _ANY_TAG.search(think) and not _ANY_TAG.search(answer) and answer.strip():
            return 1.0
    return 0.5 if answer_block(text) is not None else 0.0


def split_reply(text: str) -> tuple[str, str]:
    """(reasoning, final answer) of a think/answer reply; reasoning is "" when there is no think block."""
    m = _FULL_REPLY.fullmatch(text)
    if m:
        think = m.group(1) if m.group(1) is not None else m.group(2)
        answer = m.group(3) if m.group(3) is not None else m.group(4)
        return think.strip(), answer.strip()
    block = answer_block(text)
    return "", (block if block is not None else text).strip()
