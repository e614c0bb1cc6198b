"""Task specs as the CLI and recipes write them, mapped to task objects in one place.

    arithmetic            all five levels mixed      arithmetic:3     level 3 only
    countdown             TinyZero's Countdown
    gsm-symbolic:eng      GSM-Symbolic, English     gsm-symbolic:fra  French (any language of the wheel)
    humaneval             HumanEval
    path/to/tasks.jsonl   a team's own problems (see fronde.tasks.jsonl)

Keyword options go to the task's options class (e.g. `get_task("countdown", exactly_once=True)`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fronde.tasks.arithmetic import LEVELS, ArithmeticTask
from fronde.tasks.base import Task, TaskError
from fronde.tasks.countdown import CountdownTask
from fronde.tasks.gsm_symbolic import GSMSymbolicTask
from fronde.tasks.humaneval import HumanEvalTask
from fronde.tasks.jsonl import JsonlTask


def task_names() -> list[str]:
    """The built-in specs (gsm-symbolic takes any language of the wheel; a .jsonl path also works)."""
    return (["arithmetic"] + [f"arithmetic:{lv}" for lv in sorted(LEVELS)]
            + ["countdown", "gsm-symbolic:eng", "gsm-symbolic:fra", "humaneval"])


def get_task(spec: str, **options: Any) -> Task:
    """The task for a spec such as `arithmetic:3`, `gsm-symbolic:fra` or `data/my_tasks.jsonl`."""
    name, _, arg = spec.strip().partition(":")
    if spec.endswith(".jsonl") or Path(spec).is_file():
        return JsonlTask(spec, **options)
    if name == "arithmetic":
        if arg and not (arg.isdigit() and int(arg) in LEVELS):
            raise TaskError(f"arithmetic level {arg!r}: choose one of {', '.join(map(str, sorted(LEVELS)))}")
        return ArithmeticTask(**({"level": int(arg)} if arg else {}), **options)
    if name == "gsm-symbolic":
        return GSMSymbolicTask(**({"language": arg} if arg else {}), **options)
    if not arg and name == "countdown":
        return CountdownTask(**options)
    if not arg and name == "humaneval":
        return HumanEvalTask(**options)
    raise TaskError(f"unknown task {spec!r}; choose one of: {', '.join(task_names())}, "
                    f"gsm-symbolic:<language>, or a path to a .jsonl file")
