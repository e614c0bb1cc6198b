"""A team's own verifiable problems, one JSON object per line:

    {"prompt": "Capital of France?", "answer": "Paris"}
    {"prompt": "17 * 3 = ?", "answer": "51", "verifier": "numeric", "split": "test", "id": "mul-1"}
    {"prompt": "A date in ISO form", "answer": "\\\\d{4}-\\\\d{2}-\\\\d{2}", "verifier": "regex"}
    {"prompt": "Write add(a, b).", "answer": "assert add(2, 3) == 5", "verifier": "python-tests"}

Fields: `prompt` (the user message) and `answer` are required; `verifier` is one of exact (the
default), numeric, regex, python-tests; optional `id`, `split` ("train"/"test"), `reasoning` (a
worked explanation, which turns exact/numeric rows into SFT examples) and `meta` (an object kept
as is). Without `split`, a row goes to test when the hash of its id (or prompt) falls in the first
`test_fraction` of the hash range: stable under reordering and appends.

Verifiers, on the reply's final answer (answer block, `\\boxed{}`, `####`, "answer is", else the
whole reply without its think block):
- exact: equal after trimming, collapsing whitespace and dropping one trailing period;
- numeric: the same number (1,234.5 / 3,5 / 3/4 / 75% ...), exactly for integers, 1e-6 relative else;
- regex: `answer` is a Python regex that must match the whole final answer;
- python-tests: `answer` is test code (asserts) run after the reply's code in the sandbox.
"""

from __future__ import annotations

import hashlib
import random
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fronde.data.io import jsonl_rows
from fronde.tasks.base import (
    Example,
    Task,
    TaskError,
    content_id,
    draw_epochs,
    format_solution,
    parse_options,
)
from fronde.tasks.extract import (
    extract_answer,
    extract_tagged,
    numbers_match,
    parse_number,
    strip_think,
)
from fronde.tasks.humaneval import code_from_reply
from fronde.tasks.sandbox import Limits, run_python

VERIFIERS = ("exact", "numeric", "regex", "python-tests")


class JsonlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    test_fraction: float = Field(0.1, ge=0.0, le=1.0, description="Share of rows without `split` put in test.")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Wall-clock seconds per python-tests run.")
    memory_mb: int = Field(1024, ge=64, description="Address-space limit of a python-tests run.")


class Row(BaseModel):
    """One line of the file."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    verifier: Literal["exact", "numeric", "regex", "python-tests"] = "exact"
    id: str | None = None
    split: Literal["train", "test"] | None = None
    reasoning: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("answer", "id", mode="before")
    @classmethod
    def _numbers_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def hash_fraction(key: str) -> float:
    """Where `key` falls in [0, 1): a stable, uniform stand-in for a random draw."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) / float(1 << 48)


def _normalize_text(s: str) -> str:
    s = " ".join(s.split())
    return s[:-1].rstrip() if s.endswith(".") else s


def _final_text(completion: str) -> str:
    tagged = extract_tagged(completion)
    return tagged if tagged is not None else strip_think(completion).strip()


class JsonlTask(Task):
    """Problems and verifiers from a JSONL file (see the module docstring for the schema)."""

    def __init__(self, path: str | Path, **options: Any) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.options = parse_options(JsonlOptions, f"jsonl task {self.path}", options)
        self.rows = self._read()

    def _read(self) -> list[tuple[int, Row]]:
        if not self.path.is_file():
            raise TaskError(f"{self.path}: no such file (a task file is JSONL: one JSON object per line)")
        rows: list[tuple[int, Row]] = []
        seen_ids: dict[str, int] = {}
        seen_prompts: dict[str, int] = {}
        for lineno, obj in jsonl_rows(self.path, TaskError):
            where = f"{self.path}:{lineno}"
            if not isinstance(obj, dict):
                raise TaskError(f"{where}: expected a JSON object with prompt and answer, got {type(obj).__name__}")
            try:
                row = Row.model_validate(obj)
            except ValidationError as e:
                err = e.errors()[0]
                field = ".".join(str(p) for p in err["loc"]) or "row"
                hint = f" (fields: {', '.join(Row.model_fields)})" if err["type"] == "extra_forbidden" else ""
                raise TaskError(f"{where}: field {field!r}: {err['msg']}{hint}") from None
            self._check(row, where)
            if row.id is not None:
                if row.id in seen_ids:
                    raise TaskError(f"{where}: id {row.id!r} already used on line {seen_ids[row.id]}")
                seen_ids[row.id] = lineno
            if row.prompt in seen_prompts:
                raise TaskError(f"{where}: same prompt as line {seen_prompts[row.prompt]} (train and test "
                                f"must not share a problem; merge or drop one)")
            seen_prompts[row.prompt] = lineno
            rows.append((lineno, row))
        if not rows:
            raise TaskError(f"{self.path}: no rows (a task file is JSONL: one JSON object per line)")
        return rows

    @staticmethod
    def _check(row: Row, where: str) -> None:
        if row.verifier == "numeric" and parse_number(row.answer) is None:
            raise TaskError(f"{where}: verifier 'numeric' but answer {row.answer!r} is not a number")
        if row.verifier == "regex":
            try:
                re.compile(row.answer)
            except re.error as e:
                raise TaskError(f"{where}: answer is not a valid regex: {e}") from None
        if row.verifier == "python-tests":
            try:
                compile(row.answer, where, "exec")
            except SyntaxError as e:
                raise TaskError(f"{where}: test code does not compile: {e.msg} (line {e.lineno} of the "
                                "tests)") from None

    def _split(self, row: Row) -> str:
        if row.split is not None:
            return row.split
        return "test" if hash_fraction(row.id or row.prompt) < self.options.test_fraction else "train"

    @cached_property
    def _examples(self) -> dict[str, list[Example]]:
        out: dict[str, list[Example]] = {"train": [], "test": []}
        for lineno, row in self.rows:
            ex_id = f"jsonl/{row.id}" if row.id is not None else content_id("jsonl", row.prompt)
            out[self._split(row)].append(Example(
                id=ex_id, task=self.name, prompt=row.prompt, answer=row.answer,
                meta={**row.meta, "verifier": row.verifier, "line": lineno, "reasoning": row.reasoning}))
        return out

    def test(self, n: int | None = None) -> list[Example]:
        self._check_n(n)
        rows = self._examples["test"]
        return rows[:n] if n is not None else list(rows)

    def train(self, n: int, seed: int) -> list[Example]:
        """`n` draws from the training rows in shuffled epochs (n larger than the file repeats rows)."""
        self._check_n(n)
        pool = self._examples["train"]
        if n and not pool:
            raise TaskError(f"{self.path}: no training rows (all {len(self.rows)} are in test)")
        return draw_epochs(pool, n, random.Random(f"jsonl:train:{seed}"))

    def verify(self, completion: str, example: Example) -> float:
        kind = example.meta["verifier"]
        if kind == "exact":
            return float(_normalize_text(_final_text(completion)) == _normalize_text(example.answer))
        if kind == "numeric":
            reference = parse_number(example.answer)
            return float(reference is not None and numbers_match(parse_number(extract_answer(completion)), reference))
        if kind == "regex":
            return float(re.fullmatch(example.answer, _final_text(completion)) is not None)
        program = code_from_reply(completion).strip("\n") + "\n\n" + example.answer + "\n"
        limits = Limits(timeout_s=self.options.timeout_s, memory_mb=self.options.memory_mb)
        return 1.0 if run_python(program, limits).passed else 0.0

    def solution(self, example: Example) -> str | None:
        reasoning = example.meta.get("reasoning")
        if reasoning is None or example.meta["verifier"] not in ("exact", "numeric"):
            return None
        return format_solution(reasoning, example.answer)
