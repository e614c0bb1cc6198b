"""What every verifiable task offers: examples with a reference answer, a fixed test split, a
reward function, and (where one exists) a worked reply for SFT.

SFT renders `messages(example) + solution` as conversations, GRPO samples completions for
`messages(example)` and scores them with `verify`, evaluation averages `verify` over `test()`.
The completion format is fronde's chat layout: reasoning in `<think>...</think>`, the final answer
in `<answer>...</answer>` (the special-token spellings `<|think|>`/`<|answer|>` are accepted too).
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from fronde.data.errors import DataError
from fronde.tasks.extract import split_reply

# A system prompt that asks for the layout `verify` and `format_reward` expect; optional.
THINK_ANSWER_SYSTEM = ("Think step by step inside <think>...</think>, then give only the final answer "
                       "inside <answer>...</answer>.")

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class TaskError(DataError):
    """A user-fixable problem with a task spec, its options, its data file or a missing package.

    A DataError, so the CLI prints the message without a traceback, like the data layer's errors.
    """


@dataclass(frozen=True)
class Example:
    """One problem. `prompt` is the user message; `answer` the reference the verifier checks against."""

    id: str
    task: str
    prompt: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)


def content_id(task: str, *parts: str) -> str:
    """A stable id from the content, so equal ids mean equal problems (train/test checks use it)."""
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]
    return f"{task}/{digest}"


def draw_epochs(pool: list[Example], n: int, rng: random.Random) -> list[Example]:
    """`n` draws from a fixed pool in shuffled epochs: every problem once before any repeats."""
    out: list[Example] = []
    while len(out) < n:
        epoch = pool[:]
        rng.shuffle(epoch)
        out.extend(epoch[:n - len(out)])
    return out


def format_solution(reasoning: str, answer: str) -> str:
    """The think/answer reply text that `format_reward` scores 1.0."""
    return f"<think>\n{reasoning.strip()}\n</think>\n<answer>{answer.strip()}</answer>"


def parse_options(model: type[OptionsT], task: str, options: dict[str, Any]) -> OptionsT:
    """Validate keyword options against a task's pydantic options class, naming the bad field."""
    try:
        return model.model_validate(options)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        known = ", ".join(model.model_fields)
        what = f"option {where!r}: " if where else ""
        raise TaskError(f"{task}: {what}{err['msg']} (options: {known})") from None


class Task(ABC):
    """A verifiable task. Subclasses set `name` and implement the four abstract methods."""

    name: str

    @abstractmethod
    def train(self, n: int, seed: int) -> list[Example]:
        """`n` training examples, the same for the same seed, never one of `test()`'s."""

    @abstractmethod
    def test(self, n: int | None = None) -> list[Example]:
        """The fixed test split (its first `n` examples when `n` is given): identical on every call."""

    @abstractmethod
    def verify(self, completion: str, example: Example) -> float:
        """Reward in [0, 1] for a model's completion; 1.0 means correct."""

    def solution(self, example: Example) -> str | None:
        """A worked assistant reply in think/answer form for SFT, or None where the task has none."""
        return None

    def messages(self, example: Example, system: str | None = None) -> list[dict[str, Any]]:
        """OpenAI-style messages that pose the problem (add the generation prompt when rendering)."""
        msgs: list[dict[str, Any]] = [{"role": "system", "content": system}] if system is not None else []
        msgs.append({"role": "user", "content": example.prompt})
        return msgs

    def conversation(self, example: Example, system: str | None = None) -> list[dict[str, Any]] | None:
        """The prompt plus the worked reply as an assistant message, or None without a solution.

        The reply is split into `reasoning_content` and `content`, so fronde's chat template writes
        the think/answer special tokens; passing the reply as plain text would keep the tags as text.
        """
        reply = self.solution(example)
        if reply is None:
            return None
        reasoning, answer = split_reply(reply)
        return self.messages(example, system) + [
            {"role": "assistant", "reasoning_content": reasoning, "content": answer}]

    def _check_n(self, n: int | None) -> None:
        if n is not None and n < 0:
            raise TaskError(f"{self.name}: n must be >= 0, got {n}")

    def _check_attempts(self, attempts: int, wanted: int) -> None:
        """Stop a generator loop that cannot find new problems (options leaving too few of them)."""
        if attempts > 1000 + 100 * wanted:
            raise TaskError(f"{self.name}: cannot generate {wanted} distinct problems with these options; "
                            f"widen them or ask for fewer")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
