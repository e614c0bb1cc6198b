"""Verifiable tasks: problems with checkable answers for SFT (worked solutions), GRPO (rewards) and
evaluation (test accuracy).

A bottom layer beside fronde.data: it imports only the standard library, third-party packages and
fronde.data, never fronde.model/train/infer/serve/eval/cli.

- `get_task(spec, **options) -> Task` for `arithmetic[:level]`, `countdown`, `gsm-symbolic:<lang>`,
  `humaneval` or a `.jsonl` file; `task_names()` lists the built-in specs;
- `Task`: `train(n, seed)`, `test(n=None)`, `verify(completion, example) -> float`,
  `solution(example)`, `messages(example, system=None)`, `conversation(example, system=None)`;
- `extract_answer`, `normalize_number`, `format_reward` for rewards outside a task;
- `run_python(code, Limits(...)) -> SandboxResult` runs untrusted code (see fronde.tasks.sandbox).
"""

from fronde.tasks.arithmetic import ArithmeticTask
from fronde.tasks.base import THINK_ANSWER_SYSTEM, Example, Task, TaskError
from fronde.tasks.countdown import (
    CountdownTask,
    check_equation,
    evaluate_equation,
    solve,
)
from fronde.tasks.extract import (
    extract_answer,
    format_reward,
    normalize_number,
    parse_number,
)
from fronde.tasks.gsm_symbolic import HELD_OUT, GSMSymbolicTask
from fronde.tasks.humaneval import TEST_IDS as HUMANEVAL_TEST_IDS
from fronde.tasks.humaneval import HumanEvalTask
from fronde.tasks.jsonl import JsonlTask
from fronde.tasks.registry import decontamination_guard, get_task, task_names, test_texts
from fronde.tasks.sandbox import Limits, SandboxResult, run_python

__all__ = [
    "decontamination_guard",
    "test_texts",
    "HELD_OUT",
    "HUMANEVAL_TEST_IDS",
    "THINK_ANSWER_SYSTEM",
    "ArithmeticTask",
    "CountdownTask",
    "Example",
    "GSMSymbolicTask",
    "HumanEvalTask",
    "JsonlTask",
    "Limits",
    "SandboxResult",
    "Task",
    "TaskError",
    "check_equation",
    "evaluate_equation",
    "extract_answer",
    "format_reward",
    "get_task",
    "normalize_number",
    "parse_number",
    "run_python",
    "solve",
    "task_names",
]
