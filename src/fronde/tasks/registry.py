"""Task specs as the CLI and recipes write them, mapped to task objects in one place.

    arithmetic            all five levels mixed      arithmetic:3     level 3 only
    arithmetic:3:fra      level 3, asked in French   arithmetic:fra   all levels, in French
    countdown             TinyZero's Countdown
    gsm-symbolic:eng      GSM-Symbolic, English     gsm-symbolic:fra  French (any language of the wheel)
    humaneval             HumanEval
    path/to/tasks.jsonl   a team's own problems (see fronde.tasks.jsonl)

Keyword options go to the task's options class (e.g. `get_task("countdown", exactly_once=True)`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fronde.data.decontam import Guard
from fronde.tasks.arithmetic import LEVELS, QUESTIONS, ArithmeticTask
from fronde.tasks.base import Task, TaskError
from fronde.tasks.countdown import CountdownTask
from fronde.tasks.gsm_symbolic import GSMSymbolicTask
from fronde.tasks.humaneval import HumanEvalTask
from fronde.tasks.jsonl import JsonlTask


def task_names() -> list[str]:
    """The built-in specs (gsm-symbolic takes any language of the wheel; a .jsonl path also works)."""
    return (["arithmetic"] + [f"arithmetic:{lv}" for lv in sorted(LEVELS)] + ["arithmetic:fra", "arithmetic:1:fra"]
            + ["countdown", "gsm-symbolic:eng", "gsm-symbolic:fra", "humaneval"])


def _arithmetic_spec(arg: str) -> dict[str, Any]:
    """`3`, `fra`, `3:fra` or nothing -> ArithmeticTask options."""
    level, _, language = arg.partition(":") if arg[:1].isdigit() else ("", "", arg)
    out: dict[str, Any] = {}
    if level:
        if not (level.isdigit() and int(level) in LEVELS):
            raise TaskError(f"arithmetic level {level!r}: choose one of {', '.join(map(str, sorted(LEVELS)))}")
        out["level"] = int(level)
    if language:
        if language not in QUESTIONS:
            raise TaskError(f"arithmetic language {language!r}: choose one of {', '.join(QUESTIONS)} "
                            f"(e.g. arithmetic:1:fra)")
        out["language"] = language
    return out


def get_task(spec: str, **options: Any) -> Task:
    """The task for a spec such as `arithmetic:3`, `gsm-symbolic:fra` or `data/my_tasks.jsonl`."""
    name, _, arg = spec.strip().partition(":")
    if spec.endswith(".jsonl") or Path(spec).is_file():
        return JsonlTask(spec, **options)
    if name == "arithmetic":
        return ArithmeticTask(**_arithmetic_spec(arg), **options)
    if name == "gsm-symbolic":
        return GSMSymbolicTask(**({"language": arg} if arg else {}), **options)
    if not arg and name == "countdown":
        return CountdownTask(**options)
    if not arg and name == "humaneval":
        return HumanEvalTask(**options)
    raise TaskError(f"unknown task {spec!r}; choose one of: {', '.join(task_names())}, "
                    f"gsm-symbolic:<language>, or a path to a .jsonl file")


def test_texts(spec: str) -> list[str]:
    """The text of a task's test problems, for decontamination: each problem's statement (a HumanEval problem's
    code prompt, without fronde's instruction around it) and its reference answer."""
    texts = []
    for ex in get_task(spec).test():
        texts.append((ex.meta or {}).get("code_prompt") or ex.prompt)
        texts.append(str(ex.answer))
    return texts


def decontamination_guard(specs: list[str]) -> Guard | None:
    """What `fronde data prepare` checks every document against when a recipe names `data.decontaminate`."""
    texts = {}
    for spec in specs:
        try:
            texts[spec] = test_texts(spec)
        except TaskError as e:  # say why a data preparation needs a task at all
            raise TaskError(f"decontaminate {spec!r}: {e} (or drop it from the test sets to check against)") from None
    return Guard(texts) if texts else None
