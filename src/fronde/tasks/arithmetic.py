"""Generated integer arithmetic at five difficulty levels; answers computed exactly.

| level | operands | digits (max) | operators | parentheses |
|-------|----------|--------------|-----------|-------------|
| 1     | 2        | 2            | + -       | no          |
| 2     | 3        | 2            | + -       | no          |
| 3     | 3        | 2            | + - *     | no          |
| 4     | 4        | 3            | + - *     | yes         |
| 5     | 5        | 3            | + - *     | yes, nested |

The test split of each level is the first `test_size` distinct expressions drawn from a reserved
random stream (`arithmetic:test:L<level>`); training draws come from a per-seed stream and skip
any expression of any level's test split, so train and test never share a problem.

`language` phrases the question: `What is 12 + 7?` (eng) or `Combien font 12 + 7 ?` (fra). The expressions, splits
and worked solutions are the same in every language, so a French model is measured on the very problems an English
one is; a French recipe trains and is rewarded in French (spec `arithmetic:1:fra`).
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from fronde.tasks.base import Example, Task, content_id, format_solution, parse_options
from fronde.tasks.columns import column_working
from fronde.tasks.extract import extract_answer, parse_number

Node: TypeAlias = int | tuple[str, "Node", "Node"]
PRECEDENCE = {"+": 1, "-": 1, "*": 2}


@dataclass(frozen=True)
class Level:
    operands: int
    digits: int
    ops: str
    parens: bool


LEVELS = {1: Level(2, 2, "+-", False), 2: Level(3, 2, "+-", False), 3: Level(3, 2, "+-*", False),
          4: Level(4, 3, "+-*", True), 5: Level(5, 3, "+-*", True)}
# The question in each language (French puts a space before "?").
QUESTIONS = {"eng": "What is {expr}?", "fra": "Combien font {expr} ?"}


class ArithmeticOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: int | None = Field(None, ge=1, le=5, description="Difficulty 1..5; None mixes all five levels.")
    test_size: int = Field(200, ge=1, le=5000, description="Test problems per level.")
    columns: float = Field(0.0, ge=0, le=1, description="Share of worked solutions that add and subtract digit by "
                           "digit in columns (fronde.tasks.columns); the others show one line per operation.")
    language: Literal["eng", "fra"] = Field("eng", description="Language of the question (the numbers and the "
                                            "worked solution are the same in every language).")


def _prec(node: Node) -> int:
    return PRECEDENCE[node[0]] if isinstance(node, tuple) else 3


def render(node: Node, first: bool = True) -> str:
    """The expression with only the parentheses it needs; negative numbers after the first token in ()."""
    if not isinstance(node, tuple):
        return str(node) if node >= 0 or first else f"({node})"
    op, left, right = node
    ltxt = render(left, first)
    if _prec(left) < PRECEDENCE[op]:
        ltxt = f"({render(left, True)})"
    rtxt = render(right, False)
    if _prec(right) < PRECEDENCE[op] or (_prec(right) == PRECEDENCE[op] and op == "-"):
        rtxt = f"({render(right, True)})"
    return f"{ltxt} {op} {rtxt}"


def evaluate(node: Node) -> int:
    if not isinstance(node, tuple):
        return node
    op, left, right = node
    a, b = evaluate(left), evaluate(right)
    return a + b if op == "+" else a - b if op == "-" else a * b


def _reduce_once(node: Node) -> Node:
    """Replace the leftmost operation whose operands are both numbers by its value."""
    op, left, right = node  # type: ignore[misc]
    if not isinstance(left, tuple) and not isinstance(right, tuple):
        return evaluate(node)
    if isinstance(left, tuple):
        return (op, _reduce_once(left), right)
    return (op, left, _reduce_once(right))


def _leftmost(node: tuple[str, Node, Node]) -> tuple[str, int, int]:
    """The operation `_reduce_once` will replace: (op, left value, right value)."""
    op, left, right = node
    if not isinstance(left, tuple) and not isinstance(right, tuple):
        return op, left, right
    return _leftmost(left if isinstance(left, tuple) else right)  # type: ignore[arg-type]


def _from_ast(node: ast.expr) -> Node:
    if isinstance(node, ast.Constant):
        return int(node.value)
    assert isinstance(node, ast.BinOp)
    op = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}[type(node.op)]
    return (op, _from_ast(node.left), _from_ast(node.right))


def _random_tree(rng: random.Random, numbers: list[int], ops: str) -> Node:
    if len(numbers) == 1:
        return numbers[0]
    k = rng.randint(1, len(numbers) - 1)
    return (rng.choice(ops), _random_tree(rng, numbers[:k], ops), _random_tree(rng, numbers[k:], ops))


def generate(rng: random.Random, level: int) -> Node:
    """One expression of `level`: flat (standard precedence) below 4, a random tree with parentheses above."""
    spec = LEVELS[level]
    numbers = [rng.randint(0, 10 ** spec.digits - 1) for _ in range(spec.operands)]
    if not spec.parens:
        text = str(numbers[0]) + "".join(f" {rng.choice(spec.ops)} {x}" for x in numbers[1:])
        return _from_ast(ast.parse(text, mode="eval").body)
    while True:
        tree = _random_tree(rng, numbers, spec.ops)
        if "(" in render(tree):
            return tree


class ArithmeticTask(Task):
    """`What is 12 + 7 * 3?` -> 33. Reward 1 when the extracted answer equals the exact value."""

    def __init__(self, **options: object) -> None:
        self.options = parse_options(ArithmeticOptions, "arithmetic", options)
        level, language = self.options.level, self.options.language
        parts = ["arithmetic", *([str(level)] if level is not None else []), *([language] if language != "eng" else [])]
        self.name = ":".join(parts)  # the spec that builds it again: arithmetic, arithmetic:3, arithmetic:3:fra
        self.levels = [level] if level is not None else sorted(LEVELS)
        # English ids are those of every earlier run; another language's ids differ, so a mix of both keeps both
        self._id_prefix = "arithmetic" if language == "eng" else f"arithmetic:{language}"

    def _example(self, tree: Node, level: int) -> Example:
        expr = render(tree)
        return Example(id=content_id(self._id_prefix, expr), task=self.name,
                       prompt=QUESTIONS[self.options.language].format(expr=expr), answer=str(evaluate(tree)),
                       meta={"level": level, "expression": expr})

    def _test_level(self, level: int) -> list[Example]:
        rng = random.Random(f"arithmetic:test:L{level}")
        seen: dict[str, Example] = {}
        attempts = 0
        while len(seen) < self.options.test_size:
            attempts += 1
            self._check_attempts(attempts, self.options.test_size)
            ex = self._example(generate(rng, level), level)
            seen.setdefault(ex.id, ex)
        return list(seen.values())

    @cached_property
    def _tests(self) -> dict[int, list[Example]]:
        return {level: self._test_level(level) for level in LEVELS}

    @cached_property
    def _reserved(self) -> frozenset[str]:
        return frozenset(ex.id for exs in self._tests.values() for ex in exs)

    def test(self, n: int | None = None) -> list[Example]:
        self._check_n(n)
        # Levels interleaved, so a prefix of the mixed split covers every level.
        rows = [self._tests[lv] for lv in self.levels]
        out = [ex for group in zip(*rows) for ex in group]
        return out[:n] if n is not None else out

    def train(self, n: int, seed: int) -> list[Example]:
        self._check_n(n)
        rng = random.Random(f"arithmetic:train:{seed}")
        out: list[Example] = []
        attempts = 0
        while len(out) < n:
            attempts += 1
            self._check_attempts(attempts, n)
            level = self.levels[0] if len(self.levels) == 1 else rng.choice(self.levels)
            ex = self._example(generate(rng, level), level)
            if ex.id not in self._reserved:
                out.append(ex)
        return out

    def verify(self, completion: str, example: Example) -> float:
        got = parse_number(extract_answer(completion))
        return 1.0 if got is not None and got == int(example.answer) else 0.0

    def solution(self, example: Example) -> str:
        """The expression reduced one operation at a time (`= 500108 + 1683 * 96` ...), each addition and subtraction
        worked in columns first when the problem is in the `columns` share."""
        tree = _from_ast(ast.parse(example.meta["expression"], mode="eval").body)
        columns = self._in_columns(example)
        out = [render(tree)]
        while isinstance(tree, tuple):
            op, a, b = _leftmost(tree)
            if columns and op in "+-":
                out += column_working(a, op, b)
            tree = _reduce_once(tree)
            out.append(f"= {render(tree)}")
        return format_solution("\n".join(out), example.answer)

    def _in_columns(self, example: Example) -> bool:
        """A fixed share of problems, chosen by their content id, so every run writes the same solutions."""
        return int(example.id.rsplit("/", 1)[-1][:8], 16) < self.options.columns * 16 ** 8
